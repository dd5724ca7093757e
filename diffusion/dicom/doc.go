// Package dicom writes synthetic grayscale images as DICOM Secondary Capture
// files (PS3.3 A.8.1, SOP Class 1.2.840.10008.5.1.4.1.1.7), the format
// radiology tools (PACS, viewers, dataset loaders) read.
//
// It is a small, strict writer, not a general DICOM library: it writes one
// fixed set of attributes, checks every value against its value
// representation (length, character repertoire, UID syntax) before writing a
// byte, and returns an error for anything it cannot encode exactly. A file
// is
//
//	128-byte zero preamble, "DICM"
//	File Meta Information (group 0002, explicit VR little endian, with its
//	    group length, version 00\01, SOP class/instance, transfer syntax,
//	    implementation class UID and version name)
//	data set in Explicit VR Little Endian (1.2.840.10008.1.2.1), tags
//	    ascending, every value padded to even length (UI with NUL, text with
//	    spaces, OB with a zero byte)
//
// The data set holds the Secondary Capture Image IOD's mandatory modules:
// Patient, General Study, General Series, General Equipment, SC Equipment
// (Conversion Type SYN: synthetic), General Image (Image Type
// DERIVED\SECONDARY, Image Comments, Burned In Annotation NO), Image Pixel
// (MONOCHROME2, 8 or 16 bits allocated = stored, unsigned), a VOI LUT window
// spanning the full stored range (so viewers show the values as generated)
// and SOP Common.
//
// Identity: the images are synthetic and carry no real patient. Patient's
// Name defaults to SyntheticPatientName ("SYNTHETIC^ROENTGO") and Patient ID
// to "SYNTHETIC"; birth date and sex are empty (type 2 attributes present
// with no value). Study, series and SOP instance UIDs are UUID-derived UIDs
// of the form 2.25.<the UUID as a decimal integer> (PS3.5 B.2): NewUID draws
// a random (version 4) UUID, NameUID derives a name-based (version 5) one,
// so that a program can give an image the same UIDs every time it is
// regenerated and shards of one job agree on them. Dates and times are left
// empty unless SecondaryCapture.Created is set, so that a file's bytes
// depend only on its content.
//
// Specific Character Set (0008,0005) is written as ISO_IR 192 (UTF-8) only
// when a text value is not plain ASCII; it is absent otherwise (the default
// repertoire).
package dicom
