package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/roentgo/roentgo/internal/atomicfile"
)

// part is one shard's output found by -merge.
type part struct {
	dir      string
	jf       jobFile
	manifest string
}

// findParts returns the job files in dir: job.json (an unsharded run or an
// earlier merge) and job-SSSSS-of-NNNNN.json (shards).
func findParts(dir string) ([]part, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder; -merge takes the output folders of the shards", dir)
	}
	names, err := filepath.Glob(filepath.Join(dir, "job*.json"))
	if err != nil {
		return nil, err
	}
	var out []part
	for _, name := range names {
		base := filepath.Base(name)
		var i, n int
		if base != "job.json" {
			if _, err := fmt.Sscanf(base, "job-%05d-of-%05d.json", &i, &n); err != nil || base != fmt.Sprintf("job%s.json", shard{i, n, ""}.suffix()) {
				continue
			}
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var jf jobFile
		if err := json.Unmarshal(data, &jf); err != nil || jf.Job == "" {
			return nil, fmt.Errorf("%s: not a generate job file", name)
		}
		sh := shard{jf.Shard, jf.Shards, ""}
		if base != "job.json" && (jf.Shard != i || jf.Shards != n) {
			return nil, fmt.Errorf("%s says it is shard %s", name, sh)
		}
		if base == "job.json" && jf.Shards != 1 {
			return nil, fmt.Errorf("%s says it is shard %s; expected an unsharded job", name, sh)
		}
		out = append(out, part{dir: dir, jf: jf, manifest: shardFiles(dir, sh).manifest})
	}
	return out, nil
}

// runMerge joins the manifests of a job's shards (generate -merge).
func runMerge(o *options, srcs []string) error {
	if len(srcs) == 0 {
		return usageError{errors.New("-merge needs the shards' output folders: generate -merge [-out DIR] SRC...")}
	}
	out := o.out
	if out == "" {
		out = srcs[0]
	}
	var parts []part
	seenDir := map[string]bool{}
	for _, src := range srcs {
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		if seenDir[abs] {
			continue
		}
		seenDir[abs] = true
		ps, err := findParts(src)
		if err != nil {
			return err
		}
		parts = append(parts, ps...)
	}
	// An unsharded job.json beside shard files is an earlier merge: skip it.
	sharded := false
	for _, p := range parts {
		if p.jf.Shards > 1 {
			sharded = true
		}
	}
	if sharded {
		var keep []part
		for _, p := range parts {
			if p.jf.Shards > 1 {
				keep = append(keep, p)
			}
		}
		parts = keep
	}
	if len(parts) == 0 {
		return fmt.Errorf("no job files (job.json, job-SSSSS-of-NNNNN.json) in %s", strings.Join(srcs, ", "))
	}
	first := parts[0].jf
	n := first.Shards
	byShard := map[int]part{}
	for _, p := range parts {
		if p.jf.Job != first.Job {
			return fmt.Errorf("%s holds job %s but %s holds job %s: the shards were run with different prompt files, models or settings", p.dir, p.jf.Job, parts[0].dir, first.Job)
		}
		if p.jf.Shards != n {
			return fmt.Errorf("%s holds shard %d/%d but %s shard %d/%d: all shards must use the same count", p.dir, p.jf.Shard, p.jf.Shards, parts[0].dir, first.Shard, n)
		}
		if q, dup := byShard[p.jf.Shard]; dup {
			return fmt.Errorf("shard %d/%d is in both %s and %s", p.jf.Shard, n, q.dir, p.dir)
		}
		byShard[p.jf.Shard] = p
	}
	var missing []string
	for i := 0; i < n; i++ {
		if _, ok := byShard[i]; !ok {
			missing = append(missing, fmt.Sprint(i))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("shard(s) %s of %d missing: no job file for them in %s", strings.Join(missing, ", "), n, strings.Join(srcs, ", "))
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	var all []manifestLine
	where := map[int]string{}
	for i := 0; i < n; i++ {
		p := byShard[i]
		rows, torn, err := readManifest(p.manifest)
		if err != nil {
			return err
		}
		if torn {
			return fmt.Errorf("shard %d/%d (%s) is unfinished: its manifest ends with a torn row; run that shard again", i, n, p.dir)
		}
		if len(rows) != p.jf.Images {
			return fmt.Errorf("shard %d/%d (%s) has %d of its %d images: run that shard again to finish it", i, n, p.dir, len(rows), p.jf.Images)
		}
		absDir, err := filepath.Abs(p.dir)
		if err != nil {
			return err
		}
		for _, r := range rows {
			rec := r.rec
			if rec.Job != first.Job || rec.Index < 0 || rec.Index >= first.Total || rec.Index%n != i {
				return fmt.Errorf("%s: row %s (index %d) does not belong to shard %d/%d of job %s", p.manifest, rec.Key, rec.Index, i, n, first.Job)
			}
			if w, dup := where[rec.Index]; dup {
				return fmt.Errorf("image %s (index %d) is in %s and in %s", rec.Key, rec.Index, w, p.manifest)
			}
			where[rec.Index] = p.manifest
			if o.verify {
				if err := verifyFiles(p.dir, &rec); err != nil {
					return fmt.Errorf("%s: image %s: %v", p.manifest, rec.Key, err)
				}
			}
			if absDir != absOut {
				for k, f := range rec.Files {
					rel, err := filepath.Rel(absOut, filepath.Join(absDir, filepath.FromSlash(f.Path)))
					if err != nil {
						return err
					}
					rec.Files[k].Path = filepath.ToSlash(rel)
				}
				line, err := json.Marshal(&rec)
				if err != nil {
					return err
				}
				r = manifestLine{rec, line}
			}
			all = append(all, r)
		}
	}
	if len(all) != first.Total {
		return fmt.Errorf("the shards hold %d images; the job has %d", len(all), first.Total)
	}
	sortRows(all)

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	merged := first
	merged.Shard, merged.Shards, merged.Images = 0, 1, first.Total
	files := shardFiles(out, shard{0, 1, ""})
	if data, err := os.ReadFile(files.job); err == nil {
		var old jobFile
		if json.Unmarshal(data, &old) != nil || old.Job != first.Job {
			return fmt.Errorf("%s holds another job's files (%s); merge into another -out folder", out, files.job)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	unlock, err := lockFile(files.lock)
	if err != nil {
		return err
	}
	defer unlock()
	if err := writeManifest(files.manifest, all); err != nil {
		return err
	}
	if len(first.LabelColumns) > 0 {
		if err := writeLabels(files.labels, first.LabelColumns, all); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(&merged, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(files.job, append(data, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(o.stderr, "generate: merged %d shard(s) of job %s: %d images, none missing or duplicated; wrote %s\n", n, first.Job, len(all), files.manifest)
	return nil
}
