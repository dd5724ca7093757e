// Package dicomtest validates DICOM files with the reference tools: dcmtk's
// dcmdump and dicom3tools' dciodvfy (Debian packages dcmtk and
// dicom3tools). Tests of programs that write DICOM call Validate.
package dicomtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Validate checks DICOM files with dcmtk's dcmdump (which must
// parse them without error and show the expected attributes) and
// dicom3tools' dciodvfy (no errors, and no warnings but the ones listed in
// allowedWarnings). It skips the test when a tool is missing, unless
// ROENTGO_REQUIRE_DCMTK is set.
func Validate(t *testing.T, files ...string) {
	t.Helper()
	for _, tool := range []string{"dcmdump", "dciodvfy"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("ROENTGO_REQUIRE_DCMTK") != "" {
				t.Fatalf("%s is not installed (apt-get install dcmtk dicom3tools)", tool)
			}
			t.Skipf("%s is not installed (apt-get install dcmtk dicom3tools)", tool)
		}
	}
	for _, f := range files {
		out, err := exec.Command("dcmdump", "-q", "+E", f).CombinedOutput()
		require.NoError(t, err, "dcmdump %s:\n%s", f, out)
		s := string(out)
		for _, want := range []string{"SecondaryCaptureImageStorage", "LittleEndianExplicit", `DERIVED\SECONDARY`, "SYN", "MONOCHROME2", "SYNTHETIC^ROENTGO"} {
			require.Contains(t, s, want, "dcmdump %s", f)
		}
		out, err = exec.Command("dciodvfy", f).CombinedOutput()
		s = string(out)
		require.NoError(t, err, "dciodvfy %s:\n%s", f, s)
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(line, "Error") {
				t.Errorf("dciodvfy %s: %s\n%s", f, line, s)
			}
			if strings.HasPrefix(line, "Warning") && !allowedWarning(line) {
				t.Errorf("dciodvfy %s: %s\n%s", f, line, s)
			}
		}
	}
}

// allowedWarning reports whether a dciodvfy warning is expected: without
// SecondaryCapture.Created the Study Date and Time are empty (type 2), which
// dciodvfy notes only because a DICOMDIR (a media directory) would want
// them.
func allowedWarning(line string) bool {
	return strings.Contains(line, "needed to build DICOMDIR - Study Date") ||
		strings.Contains(line, "needed to build DICOMDIR - Study Time")
}
