package dataset

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// collect runs one epoch and returns the samples by path.
func collect(t *testing.T, d *Dataset) (map[string]*Sample, Stats) {
	t.Helper()
	it, err := d.Iter(Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	got := map[string]*Sample{}
	for {
		s, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s.Pos.Epoch > 0 {
			break
		}
		got[s.Path] = s
	}
	return got, it.Stats()
}

func makeFolder(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, dir, "a/img1.png", encodePNG(t, gradient(20, 16, 1)))
	writeFile(t, dir, "a/img1.txt", []byte("  Left  pleural\neffusion \n"))
	writeFile(t, dir, "a/img2.jpg", encodeJPEG(t, gradient(16, 24, 2)))
	writeFile(t, dir, "a/img2.caption", []byte("cardiomegaly"))
	writeFile(t, dir, "a/nocap.png", encodePNG(t, gradient(16, 16, 3)))
	writeFile(t, dir, "train/x.png", encodePNG(t, gradient(16, 16, 4)))
	writeFile(t, dir, "train/x.txt", []byte("normal chest"))
	writeFile(t, dir, "corrupt.png", []byte("\x89PNG\r\n\x1a\nthis is not a png"))
	writeFile(t, dir, "corrupt.txt", []byte("broken"))
	writeFile(t, dir, "emptycap.png", encodePNG(t, gradient(16, 16, 5)))
	writeFile(t, dir, "emptycap.txt", []byte(" \n "))
	writeFile(t, dir, ".hidden/h.png", encodePNG(t, gradient(16, 16, 6)))
	writeFile(t, dir, ".hidden/h.txt", []byte("hidden"))
	writeFile(t, dir, "scan.dcm", buildDICOM(dicomSpec{rows: 16, cols: 16, photometric: "MONOCHROME1", bitsAllocated: 16, bitsStored: 12, pixels: make([]int, 256)}))
	writeFile(t, dir, "scan.txt", []byte("portable chest"))
	writeFile(t, dir, "README.txt", []byte("not a caption"))
	return dir
}

func TestFolderLayout(t *testing.T) {
	dir := makeFolder(t)
	d, err := Open(dir, Options{Resolution: 8, Workers: 2, Epochs: 1, Lowercase: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Layout() != Folder {
		t.Fatalf("layout %v", d.Layout())
	}
	if d.Len() != 6 || d.Stats().NoCaption != 1 {
		t.Fatalf("%d records, stats %+v", d.Len(), d.Stats())
	}
	got, st := collect(t, d)
	want := map[string]string{
		"a/img1.png":  "left pleural effusion",
		"a/img2.jpg":  "cardiomegaly",
		"train/x.png": "normal chest",
		"scan.dcm":    "portable chest",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d samples %v", len(got), keys(got))
	}
	for p, c := range want {
		s := got[p]
		if s == nil || s.Caption != c {
			t.Fatalf("%s: %+v, want caption %q", p, s, c)
		}
		if len(s.Pixels) != 3*8*8 || s.Shape[0] != 3 || s.Shape[1] != 8 || s.Shape[2] != 8 {
			t.Fatalf("%s: shape %v", p, s.Shape)
		}
		for _, v := range s.Pixels {
			if v < -1 || v > 1 {
				t.Fatalf("%s: value %v out of [-1,1]", p, v)
			}
		}
	}
	if got["train/x.png"].Split != "train" || got["a/img1.png"].Split != "" {
		t.Errorf("splits %q %q", got["train/x.png"].Split, got["a/img1.png"].Split)
	}
	if st.Corrupt != 1 || st.NoCaption != 2 || st.Loaded != 4 {
		t.Errorf("stats %+v", st)
	}
	if tt := got["a/img1.png"].Tensor(); tt.Shape()[0] != 3 || tt.Numel() != 192 {
		t.Errorf("tensor %v", tt)
	}

	// Split selection.
	d2, err := Open(dir, Options{Resolution: 8, Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	if d2.Len() != 1 || d2.Record(0).Image != "train/x.png" {
		t.Errorf("split train: %d records", d2.Len())
	}

	// Strict: the first problem is an error naming the file.
	if _, err := Open(dir, Options{Resolution: 8, Strict: true}); err == nil || !errors.Is(err, ErrNoCaption) || !strings.Contains(err.Error(), "nocap.png") {
		t.Errorf("strict open: %v", err)
	}
	os.Remove(filepath.Join(dir, "a", "nocap.png"))
	ds, err := Open(dir, Options{Resolution: 8, Strict: true, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	it, _ := ds.Iter(Position{})
	defer it.Close()
	var ie *ItemError
	for {
		_, err = it.Next()
		if err != nil {
			break
		}
	}
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "corrupt.png") {
		t.Errorf("strict iteration: %v", err)
	}
}

func keys(m map[string]*Sample) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

func TestEmptyDataset(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{Resolution: 8}); err == nil || !strings.Contains(err.Error(), "no usable images") {
		t.Errorf("empty folder: %v", err)
	}
	writeFile(t, dir, "a.png", encodePNG(t, gradient(8, 8, 0)))
	_, err := Open(dir, Options{Resolution: 8})
	if err == nil || !strings.Contains(err.Error(), "1 without a caption") {
		t.Errorf("no captions: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), Options{Resolution: 8}); err == nil {
		t.Error("missing path: no error")
	}
}

func TestTableLayout(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "img/a.png", encodePNG(t, gradient(16, 16, 1)))
	writeFile(t, dir, "img/b.png", encodePNG(t, gradient(16, 16, 2)))
	writeFile(t, dir, "img/c.png", encodePNG(t, gradient(16, 16, 3)))
	csvFile := writeFile(t, dir, "data.csv", []byte("\xEF\xBB\xBFfile_name,Caption,split\n"+
		"img/a.png,\"Right effusion,\n small\",train\n"+
		"./img/b.png,cardiomegaly,val\n"+
		"img/missing.png,whatever,train\n"+
		"img/c.png,,train\n"))
	d, err := Open(csvFile, Options{Resolution: 8, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if d.Layout() != Table || d.Len() != 2 {
		t.Fatalf("layout %v, %d records", d.Layout(), d.Len())
	}
	st := d.Stats()
	if st.MissingImage != 1 || st.NoCaption != 1 {
		t.Errorf("stats %+v", st)
	}
	got, _ := collect(t, d)
	if got["img/a.png"].Caption != "Right effusion, small" || got["img/a.png"].Split != "train" || got["img/b.png"].Split != "validate" {
		t.Errorf("samples %+v %+v", got["img/a.png"], got["img/b.png"])
	}
	d.Close()
	d, err = Open(csvFile, Options{Resolution: 8, Split: "validation"})
	if err != nil || d.Len() != 1 {
		t.Fatalf("split: %v", err)
	}
	d.Close()

	// JSONL with custom keys, found as metadata.jsonl in a folder.
	jdir := t.TempDir()
	writeFile(t, jdir, "x/1.png", encodePNG(t, gradient(16, 16, 1)))
	writeFile(t, jdir, "metadata.jsonl", []byte(`{"img": "x/1.png", "report": "  Edema  "}`+"\n\n"))
	if _, err := Open(jdir, Options{Resolution: 8}); err == nil || !strings.Contains(err.Error(), "no image key") {
		t.Errorf("default keys: %v", err)
	}
	d, err = Open(jdir, Options{Resolution: 8, ImageColumn: "img", TextColumn: "report"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Record(0).Caption != "Edema" {
		t.Errorf("caption %q", d.Record(0).Caption)
	}
	d.Close()

	// Bad tables: errors naming file and line.
	outside := t.TempDir()
	writeFile(t, outside, "secret.png", encodePNG(t, gradient(8, 8, 0)))
	if err := os.Symlink(filepath.Join(outside, "secret.png"), filepath.Join(dir, "link.png")); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ file, body, want string }{
		"dotdot":       {"t.csv", "image,text\n../etc/passwd,x\n", "t.csv:2: image path \"../etc/passwd\" leaves the dataset root"},
		"dotdot2":      {"t.csv", "image,text\nimg/../../x.png,x\n", "leaves the dataset root"},
		"absolute":     {"t.jsonl", `{"image": "/etc/passwd", "text": "x"}`, "t.jsonl:1: image path \"/etc/passwd\" is absolute"},
		"symlink":      {"t.csv", "image,text\nlink.png,x\n", "leaves the dataset root"},
		"no column":    {"t.csv", "picture,text\na.png,x\n", "no image column (expected one of image, file_name"},
		"bad json":     {"t.jsonl", "{\"image\": 1}\n", "t.jsonl:1: \"image\" is a float64, expected a string"},
		"not json":     {"t.jsonl", "image,text\n", "t.jsonl:1:"},
		"ragged csv":   {"t.csv", "image,text\na.png\n", "wrong number of fields"},
		"empty csv":    {"t.csv", "", "is empty"},
		"unknown kind": {"t.xlsx", "", "unknown table format"},
	} {
		f := writeFile(t, dir, c.file, []byte(c.body))
		_, err := Open(f, Options{Resolution: 8, Layout: Table})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
}

func gz(t *testing.T, b []byte) []byte {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

func makeMIMIC(t *testing.T, gzipped, reportsBeside bool) string {
	dir := t.TempDir()
	meta := "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns\n" +
		"aa11-bb22,10000032,50414267,CHEST (PA AND LAT),PA,16,16\n" +
		"cc33-dd44,10000032,50414267,CHEST (PA AND LAT),LATERAL,16,16\n" +
		"ee55-ff66,10000032,53189527,CHEST (PORTABLE AP),AP,16,16\n" +
		"0a0b-0c0d,10000764,57375967,CHEST (PA AND LAT),PA,16,16\n" +
		"1a1b-1c1d,10000898,50771383,CHEST (PA AND LAT),PA,16,16\n" +
		"2a2b-2c2d,10000935,51178377,CHEST (PA AND LAT),PA,16,16\n"
	split := "dicom_id,study_id,subject_id,split\n" +
		"aa11-bb22,50414267,10000032,train\n" +
		"cc33-dd44,50414267,10000032,train\n" +
		"ee55-ff66,53189527,10000032,validate\n" +
		"0a0b-0c0d,57375967,10000764,test\n" +
		"1a1b-1c1d,50771383,10000898,train\n" +
		"2a2b-2c2d,51178377,10000935,train\n"
	if gzipped {
		writeFile(t, dir, "mimic-cxr-2.0.0-metadata.csv.gz", gz(t, []byte(meta)))
		writeFile(t, dir, "mimic-cxr-2.0.0-split.csv.gz", gz(t, []byte(split)))
	} else {
		writeFile(t, dir, "mimic-cxr-2.0.0-metadata.csv", []byte(meta))
		writeFile(t, dir, "mimic-cxr-2.0.0-split.csv", []byte(split))
	}
	img := func(rel string, seed int) { writeFile(t, dir, rel, encodeJPEG(t, gradient(16, 20, seed))) }
	img("files/p10/p10000032/s50414267/aa11-bb22.jpg", 1)
	img("files/p10/p10000032/s50414267/cc33-dd44.jpg", 2)
	img("files/p10/p10000032/s53189527/ee55-ff66.jpg", 3)
	img("files/p10/p10000764/s57375967/0a0b-0c0d.jpg", 4)
	img("files/p10/p10000898/s50771383/1a1b-1c1d.jpg", 5)
	// 2a2b-2c2d: image missing.
	rep := "mimic-cxr-reports/"
	if reportsBeside {
		rep = ""
	}
	writeFile(t, dir, rep+"files/p10/p10000032/s50414267.txt", []byte(mimicReport))
	writeFile(t, dir, rep+"files/p10/p10000032/s53189527.txt", []byte("FINDINGS: Right ___ PICC tip in the SVC.\n"))
	writeFile(t, dir, rep+"files/p10/p10000764/s57375967.txt", []byte("INDICATION: ___ with cough\n"))
	// s50771383: no report.
	return dir
}

func TestMIMICLayout(t *testing.T) {
	for _, variant := range []struct{ gz, beside bool }{{false, false}, {true, true}} {
		dir := makeMIMIC(t, variant.gz, variant.beside)
		d, err := Open(dir, Options{Resolution: 8, Epochs: 1, Workers: 3})
		if err != nil {
			t.Fatal(err)
		}
		if d.Layout() != MIMICCXR || d.Len() != 3 {
			t.Fatalf("layout %v, %d records", d.Layout(), d.Len())
		}
		st := d.Stats()
		if st.FilteredView != 1 || st.MissingImage != 1 || st.NoCaption != 1 {
			t.Errorf("open stats %+v", st)
		}
		got, st := collect(t, d)
		a := got["files/p10/p10000032/s50414267/aa11-bb22.jpg"]
		if a == nil || a.Caption != "No acute cardiopulmonary process." || a.ID != "aa11-bb22" || a.Split != "train" {
			t.Errorf("aa11: %+v", a)
		}
		e := got["files/p10/p10000032/s53189527/ee55-ff66.jpg"]
		if e == nil || e.Caption != "Right PICC tip in the SVC." || e.Split != "validate" {
			t.Errorf("ee55: %+v", e)
		}
		if len(got) != 2 || st.NoCaption != 2 {
			t.Errorf("%d samples, stats %+v", len(got), st)
		}
		d.Close()
	}
	dir := makeMIMIC(t, false, false)
	d, err := Open(dir, Options{Resolution: 8, Views: []string{"lateral"}, Layout: MIMICCXR})
	if err != nil || d.Len() != 1 || d.Record(0).ID != "cc33-dd44" {
		t.Fatalf("lateral: %v", err)
	}
	d, err = Open(dir, Options{Resolution: 8, Split: "test"})
	if err != nil || d.Len() != 1 || d.Record(0).Split != "test" {
		t.Fatalf("test split: %v", err)
	}
	if _, err := Open(dir, Options{Resolution: 8, Strict: true}); err == nil || !errors.Is(err, ErrNoCaption) || !strings.Contains(err.Error(), "s50771383.txt not found") {
		t.Errorf("strict: %v", err)
	}
	writeFile(t, dir, "mimic-cxr-2.0.0-metadata.csv", []byte("dicom_id,subject_id,study_id,ViewPosition\n../../x,1,2,PA\n"))
	if _, err := Open(dir, Options{Resolution: 8}); err == nil || !strings.Contains(err.Error(), "metadata.csv:2") {
		t.Errorf("bad ids: %v", err)
	}
}

func TestCheXpertLayout(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "CheXpert-v1.0-small")
	hdr := "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices\n"
	writeFile(t, root, "train.csv", []byte(hdr+
		"CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0\n"+
		"CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,\n"+
		"CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Female,87,Lateral,,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,\n"+
		"CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,41,Frontal,PA,1.0,,,,,,,,,0.0,,,,\n"))
	writeFile(t, root, "valid.csv", []byte(hdr+
		"renamed-root/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"))
	img := func(rel string, seed int) { writeFile(t, root, rel, encodeJPEG(t, gradient(20, 16, seed))) }
	img("train/patient00001/study1/view1_frontal.jpg", 1)
	img("train/patient00002/study2/view1_frontal.jpg", 2)
	img("train/patient00002/study2/view2_lateral.jpg", 3)
	img("train/patient00003/study1/view1_frontal.jpg", 4)
	img("valid/patient64541/study1/view1_frontal.jpg", 5)
	d, err := Open(root, Options{Resolution: 8, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if d.Layout() != CheXpert || d.Len() != 4 || d.Stats().FilteredView != 1 {
		t.Fatalf("layout %v, %d records, %+v", d.Layout(), d.Len(), d.Stats())
	}
	got, _ := collect(t, d)
	want := map[string][2]string{
		"train/patient00001/study1/view1_frontal.jpg": {"support devices", "train"},
		"train/patient00002/study2/view1_frontal.jpg": {"lung opacity, fracture, possible cardiomegaly, possible edema, possible consolidation, possible atelectasis, possible pleural effusion", "train"},
		"train/patient00003/study1/view1_frontal.jpg": {"no finding", "train"},
		"valid/patient64541/study1/view1_frontal.jpg": {"enlarged cardiomediastinum, cardiomegaly, lung opacity", "validate"},
	}
	for p, w := range want {
		if s := got[p]; s == nil || s.Caption != w[0] || s.Split != w[1] {
			t.Errorf("%s: %+v, want %q %q", p, s, w[0], w[1])
		}
	}
	d, err = Open(root, Options{Resolution: 8, Views: []string{"PA"}})
	if err != nil || d.Len() != 1 {
		t.Errorf("PA only: %v", err)
	}
	writeFile(t, root, "valid.csv", []byte(hdr+"x/../../../etc/passwd,Male,73,Frontal,AP,,,,,,,,,,,,,,\n"))
	if _, err := Open(root, Options{Resolution: 8}); err == nil || !strings.Contains(err.Error(), "valid.csv:2: Path") {
		t.Errorf("escaping path: %v", err)
	}
}

func TestParseLayout(t *testing.T) {
	for s, want := range map[string]Layout{"": Auto, "Folder": Folder, "jsonl": Table, "mimic": MIMICCXR, "chexpert": CheXpert} {
		if l, err := ParseLayout(s); err != nil || l != want {
			t.Errorf("%q: %v %v", s, l, err)
		}
		if l, _ := ParseLayout(want.String()); l != want {
			t.Errorf("round trip %v", want)
		}
	}
	if _, err := ParseLayout("coco"); err == nil {
		t.Error("coco accepted")
	}
}
