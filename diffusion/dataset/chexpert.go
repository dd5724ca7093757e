package dataset

import (
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// CheXpert layout (CheXpert-v1.0 and CheXpert-v1.0-small):
//
//	ROOT/train.csv, ROOT/valid.csv   Path, Sex, Age, Frontal/Lateral, AP/PA, 14 labels
//	ROOT/train/patient00001/study1/view1_frontal.jpg
//
// Path is relative to ROOT's parent ("CheXpert-v1.0-small/train/..."): its
// first component is dropped when it is not train, valid or test (so a
// renamed root still works), and the rest must stay inside ROOT. Only
// Frontal images whose AP/PA value is in Options.Views (PA and AP by
// default) are kept; train.csv gives split "train", valid.csv "validate".
//
// Captions are made from the labels, as CheXpert has no report text: the
// findings whose label is 1 (positive), in the CSV's column order, written
// in lower case and joined by ", " ("cardiomegaly, pleural effusion");
// uncertain labels (-1) follow Options.Uncertain: by default they add
// "possible <finding>" after the positives ("cardiomegaly, possible
// edema"); UncertainPositive counts them as positive, UncertainNegative and
// UncertainIgnore leave them out. When nothing is positive (or possible) —
// all labels 0 or blank, whatever "No Finding" says — the caption is "no
// finding". The phrases are in chexpertFindings ("Pleural Other" is "other
// pleural abnormality").

// chexpertFindings are the 13 finding columns and their caption phrases,
// in CSV order ("No Finding" is not one of them).
var chexpertFindings = [][2]string{
	{"Enlarged Cardiomediastinum", "enlarged cardiomediastinum"},
	{"Cardiomegaly", "cardiomegaly"},
	{"Lung Opacity", "lung opacity"},
	{"Lung Lesion", "lung lesion"},
	{"Edema", "edema"},
	{"Consolidation", "consolidation"},
	{"Pneumonia", "pneumonia"},
	{"Atelectasis", "atelectasis"},
	{"Pneumothorax", "pneumothorax"},
	{"Pleural Effusion", "pleural effusion"},
	{"Pleural Other", "other pleural abnormality"},
	{"Fracture", "fracture"},
	{"Support Devices", "support devices"},
}

func (d *Dataset) scanCheXpert() error {
	found := false
	for _, f := range [][2]string{{"train.csv", "train"}, {"valid.csv", "validate"}} {
		file := filepath.Join(d.dir, f[0])
		if !fileExists(file) {
			continue
		}
		found = true
		if err := d.readCheXpertCSV(file, f[1]); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("dataset: %s has no train.csv or valid.csv, expected the CheXpert root", d.dir)
	}
	return nil
}

func (d *Dataset) readCheXpertCSV(file, split string) error {
	if !d.keepSplit(split) {
		return nil
	}
	cols := []string{"Path", "Frontal/Lateral", "AP/PA"}
	for _, f := range chexpertFindings {
		cols = append(cols, f[0])
	}
	views := viewSet(d.opts.Views)
	base := filepath.Base(file)
	return readCSVColumns(file, cols, func(line int, v []string) error {
		rel, err := chexpertPath(v[0])
		if err != nil {
			return fmt.Errorf("dataset: %s:%d: Path %v", base, line, err)
		}
		if !strings.EqualFold(strings.TrimSpace(v[1]), "Frontal") || !views[strings.ToUpper(strings.TrimSpace(v[2]))] {
			d.stats.FilteredView++
			return nil
		}
		caption, err := chexpertCaption(v[3:], d.opts.Uncertain)
		if err != nil {
			return fmt.Errorf("dataset: %s:%d: %v", base, line, err)
		}
		if !fileExists(filepath.Join(d.dir, filepath.FromSlash(rel))) {
			if d.opts.Strict {
				return &ItemError{Path: rel, Err: fmt.Errorf("listed in %s:%d but missing", base, line)}
			}
			d.stats.MissingImage++
			d.stats.note(rel + ": missing")
			return nil
		}
		d.records = append(d.records, Record{Image: rel, Caption: CleanCaption(caption, d.opts.Lowercase), ID: rel, Split: split})
		return nil
	})
}

// chexpertPath maps a CheXpert Path value to a path inside the root.
func chexpertPath(p string) (string, error) {
	q := strings.TrimSpace(filepath.ToSlash(p))
	if i := strings.IndexByte(q, '/'); i > 0 {
		switch q[:i] {
		case "train", "valid", "test":
		default:
			q = q[i+1:]
		}
	}
	rel, err := localPath(q)
	if err != nil {
		return "", err
	}
	return path.Clean(rel), nil
}

// chexpertCaption builds a caption from the 13 finding labels.
func chexpertCaption(labels []string, policy UncertainPolicy) (string, error) {
	var pos, possible []string
	for i, s := range labels {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || (v != 1 && v != 0 && v != -1) {
			return "", fmt.Errorf("%s label %q, expected 1, 0, -1 or blank", chexpertFindings[i][0], s)
		}
		phrase := chexpertFindings[i][1]
		switch {
		case v == 1:
			pos = append(pos, phrase)
		case v == -1 && policy == UncertainPositive:
			pos = append(pos, phrase)
		case v == -1 && policy == UncertainPossible:
			possible = append(possible, "possible "+phrase)
		}
	}
	all := append(pos, possible...)
	if len(all) == 0 {
		return "no finding", nil
	}
	return strings.Join(all, ", "), nil
}
