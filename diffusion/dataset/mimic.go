package dataset

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// MIMIC-CXR-JPG layout (PhysioNet, version 2.x):
//
//	ROOT/mimic-cxr-2.0.0-metadata.csv[.gz]  dicom_id, subject_id, study_id, ViewPosition, ...
//	ROOT/mimic-cxr-2.0.0-split.csv[.gz]     dicom_id, study_id, subject_id, split (optional)
//	ROOT/files/pNN/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg   (NN: the subject id's first two digits)
//	REPORTS/files/pNN/pNNNNNNNN/sNNNNNNNN.txt          the study's free-text report
//
// REPORTS is Options.ReportsDir, else ROOT/mimic-cxr-reports (how the
// reports archive unpacks), else ROOT itself. Images whose ViewPosition is
// not in Options.Views (PA and AP by default) are dropped; a missing .jpg is
// looked for as .dcm (the DICOM release has the same tree). The caption is
// the report's IMPRESSION section, else FINDINGS (see Impression), read when
// the sample is loaded. Images without a report are skipped at open time,
// reports without either section when loaded (counted as NoCaption).

func (d *Dataset) scanMIMIC() error {
	meta := findFile(d.dir, "mimic-cxr-2.0.0-metadata.csv")
	if meta == "" {
		return fmt.Errorf("dataset: %s has no mimic-cxr-2.0.0-metadata.csv(.gz), expected the MIMIC-CXR-JPG root", d.dir)
	}
	d.capDir = d.opts.ReportsDir
	if d.capDir == "" {
		d.capDir = d.dir
		if fi, err := os.Stat(filepath.Join(d.dir, "mimic-cxr-reports", "files")); err == nil && fi.IsDir() {
			d.capDir = filepath.Join(d.dir, "mimic-cxr-reports")
		}
	} else if fi, err := os.Stat(d.capDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("dataset: reports folder %s is not a directory, expected the folder holding files/pNN/...", d.capDir)
	}
	splits := map[string]string{}
	if sf := findFile(d.dir, "mimic-cxr-2.0.0-split.csv"); sf != "" {
		err := readCSVColumns(sf, []string{"dicom_id", "split"}, func(line int, v []string) error {
			splits[v[0]] = normSplit(v[1])
			return nil
		})
		if err != nil {
			return err
		}
	} else if d.opts.Split != "" {
		return fmt.Errorf("dataset: %s has no mimic-cxr-2.0.0-split.csv(.gz), needed to select split %q", d.dir, d.opts.Split)
	}
	views := viewSet(d.opts.Views)
	reportOK := map[string]bool{} // report path -> exists
	return readCSVColumns(meta, []string{"dicom_id", "subject_id", "study_id", "ViewPosition"}, func(line int, v []string) error {
		dicomID, subject, study, view := strings.TrimSpace(v[0]), strings.TrimSpace(v[1]), strings.TrimSpace(v[2]), strings.TrimSpace(v[3])
		if !isDigits(subject) || len(subject) < 2 || !isDigits(study) || !isDicomID(dicomID) {
			return fmt.Errorf("dataset: %s:%d: dicom_id %q, subject_id %q, study_id %q: expected numeric subject and study ids and a hexadecimal dicom id", filepath.Base(meta), line, dicomID, subject, study)
		}
		if !views[strings.ToUpper(view)] {
			d.stats.FilteredView++
			return nil
		}
		split := splits[dicomID]
		if !d.keepSplit(split) {
			d.stats.FilteredSplit++
			return nil
		}
		dir := path.Join("files", "p"+subject[:2], "p"+subject, "s"+study)
		img := path.Join(dir, dicomID+".jpg")
		if !fileExists(filepath.Join(d.dir, filepath.FromSlash(img))) {
			alt := path.Join(dir, dicomID+".dcm")
			if !fileExists(filepath.Join(d.dir, filepath.FromSlash(alt))) {
				if d.opts.Strict {
					return &ItemError{Path: img, Err: fmt.Errorf("listed in %s:%d but missing", filepath.Base(meta), line)}
				}
				d.stats.MissingImage++
				d.stats.note(img + ": missing")
				return nil
			}
			img = alt
		}
		report := path.Join("files", "p"+subject[:2], "p"+subject, "s"+study+".txt")
		ok, seen := reportOK[report]
		if !seen {
			ok = fileExists(filepath.Join(d.capDir, filepath.FromSlash(report)))
			reportOK[report] = ok
		}
		if !ok {
			if d.opts.Strict {
				return &ItemError{Path: img, Err: fmt.Errorf("%w: report %s not found under %s", ErrNoCaption, report, d.capDir)}
			}
			d.stats.NoCaption++
			d.stats.note(img + ": no report " + report)
			return nil
		}
		d.records = append(d.records, Record{Image: img, CaptionFile: report, Report: true, ID: dicomID, Split: split})
		return nil
	})
}

// viewSet returns the upper-cased views to keep (PA and AP by default).
func viewSet(v []string) map[string]bool {
	if v == nil {
		v = []string{"PA", "AP"}
	}
	m := map[string]bool{}
	for _, s := range v {
		m[strings.ToUpper(strings.TrimSpace(s))] = true
	}
	return m
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isDicomID accepts MIMIC-CXR's dicom ids ("02aa804e-bde0afdd-112c0b34-7bc16630-4e384014").
func isDicomID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-' || c == '.') {
			return false
		}
	}
	return strings.Trim(s, ".") == s
}

// readCSVColumns calls fn with the named columns of each row of a CSV file
// (.csv or .csv.gz); line is the row's line number.
func readCSVColumns(file string, cols []string, fn func(line int, v []string) error) error {
	f, err := openMaybeGzip(file)
	if err != nil {
		return fmt.Errorf("dataset: %v", err)
	}
	defer f.Close()
	r := csvReader(f, ',')
	header, err := r.Read()
	if err != nil {
		if err == io.EOF {
			return fmt.Errorf("dataset: %s is empty, expected a header with %s", file, strings.Join(cols, ", "))
		}
		return fmt.Errorf("dataset: %s: %v", file, err)
	}
	header = append([]string(nil), header...)
	idx := make([]int, len(cols))
	for i, c := range cols {
		if idx[i] = pickColumn(header, c, nil); idx[i] < 0 {
			return fmt.Errorf("dataset: %s: no %s column (the header is %s)", file, c, strings.Join(header, ", "))
		}
	}
	v := make([]string, len(cols))
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dataset: %s: %v", file, err)
		}
		line, _ := r.FieldPos(0)
		for i, j := range idx {
			v[i] = rec[j]
		}
		if err := fn(line, v); err != nil {
			return err
		}
	}
}
