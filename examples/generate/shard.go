package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// shard is this process's part of a job: images whose index modulo count is
// index.
type shard struct {
	index, count int
	source       string // where it came from (for the summary)
}

// suffix is the part of a shard's file names after their base: "" for an
// unsharded run, "-00003-of-00010" for shard 3 of 10.
func (s shard) suffix() string {
	if s.count <= 1 {
		return ""
	}
	return fmt.Sprintf("-%05d-of-%05d", s.index, s.count)
}

func (s shard) String() string { return fmt.Sprintf("%d/%d", s.index, s.count) }

// maxShards bounds the shard count.
const maxShards = 99999

// parseShard reads "-shard i/n".
func parseShard(v string) (shard, error) {
	a, b, ok := strings.Cut(v, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || n > maxShards || i < 0 || i >= n {
		return shard{}, fmt.Errorf("-shard %q; expected i/n with 0 <= i < n <= %d (e.g. 3/10)", v, maxShards)
	}
	return shard{i, n, "-shard"}, nil
}

// ShardsEnv is the environment variable that gives the shard count of a
// Kubernetes Indexed Job (set it to the Job's spec.completions) when -shards
// is not given.
const ShardsEnv = "ROENTGO_SHARDS"

// resolveShard returns the shard from -shard (flag), else from the
// environment of the engine running the program:
//
//   - Kubernetes Indexed Job: JOB_COMPLETION_INDEX is the index; the count
//     is -shards, else $ROENTGO_SHARDS (Kubernetes does not export
//     spec.completions).
//   - Slurm job array: the index is SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN
//     (MIN is 0 when unset), the count SLURM_ARRAY_TASK_COUNT (or -shards);
//     the array must be contiguous (--array=0-99 or 1-100, any %throttle):
//     MAX - MIN + 1 must equal the count and SLURM_ARRAY_TASK_STEP be 1.
//
// With neither, the run is unsharded (0/1), and -shards alone is an error.
func resolveShard(flagShard string, flagShards int, env func(string) (string, bool)) (shard, error) {
	if flagShard != "" {
		if flagShards != 0 {
			return shard{}, errors.New("-shard i/n already gives the count; -shards goes with an index from the environment (JOB_COMPLETION_INDEX)")
		}
		return parseShard(flagShard)
	}
	if flagShards < 0 || flagShards > maxShards {
		return shard{}, fmt.Errorf("-shards %d; expected 1 to %d", flagShards, maxShards)
	}
	num := func(name string) (int, bool, error) {
		v, ok := env(name)
		if !ok || strings.TrimSpace(v) == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, true, fmt.Errorf("$%s=%q; expected an integer", name, v)
		}
		return n, true, nil
	}
	if idx, ok, err := num("JOB_COMPLETION_INDEX"); err != nil {
		return shard{}, err
	} else if ok {
		count := flagShards
		if count == 0 {
			c, has, err := num(ShardsEnv)
			if err != nil {
				return shard{}, err
			}
			if !has {
				return shard{}, fmt.Errorf("$JOB_COMPLETION_INDEX=%d (a Kubernetes Indexed Job) but no shard count: pass -shards N or set $%s to the Job's spec.completions", idx, ShardsEnv)
			}
			count = c
		}
		if count < 1 || count > maxShards || idx < 0 || idx >= count {
			return shard{}, fmt.Errorf("$JOB_COMPLETION_INDEX=%d with %d shards; expected an index from 0 to %d", idx, count, count-1)
		}
		return shard{idx, count, "Kubernetes $JOB_COMPLETION_INDEX"}, nil
	}
	if id, ok, err := num("SLURM_ARRAY_TASK_ID"); err != nil {
		return shard{}, err
	} else if ok {
		lo, _, err := num("SLURM_ARRAY_TASK_MIN")
		if err != nil {
			return shard{}, err
		}
		step, hasStep, err := num("SLURM_ARRAY_TASK_STEP")
		if err != nil {
			return shard{}, err
		}
		if hasStep && step != 1 {
			return shard{}, fmt.Errorf("$SLURM_ARRAY_TASK_STEP=%d; expected a contiguous array (--array=0-N, step 1)", step)
		}
		count, hasCount, err := num("SLURM_ARRAY_TASK_COUNT")
		if err != nil {
			return shard{}, err
		}
		if flagShards != 0 {
			count, hasCount = flagShards, true
		}
		if !hasCount {
			return shard{}, fmt.Errorf("$SLURM_ARRAY_TASK_ID=%d but no $SLURM_ARRAY_TASK_COUNT: pass -shards N", id)
		}
		if hi, has, err := num("SLURM_ARRAY_TASK_MAX"); err != nil {
			return shard{}, err
		} else if has && hi-lo+1 != count {
			return shard{}, fmt.Errorf("the Slurm array runs tasks %d to %d but has %d tasks; expected a contiguous array (--array=%d-%d)", lo, hi, count, lo, lo+count-1)
		}
		idx := id - lo
		if count < 1 || count > maxShards || idx < 0 || idx >= count {
			return shard{}, fmt.Errorf("$SLURM_ARRAY_TASK_ID=%d (minimum %d) with %d tasks; expected an id from %d to %d", id, lo, count, lo, lo+count-1)
		}
		return shard{idx, count, "Slurm $SLURM_ARRAY_TASK_ID"}, nil
	}
	if flagShards > 1 {
		return shard{}, fmt.Errorf("-shards %d without a shard index: pass -shard i/n, or run as a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX)", flagShards)
	}
	return shard{0, 1, "unsharded"}, nil
}
