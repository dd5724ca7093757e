package cuda

import (
	"bufio"
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var (
	reEntryDecl = regexp.MustCompile(`\.entry\s+([A-Za-z_][A-Za-z0-9_$]*)\s*\(`)
	reParamDecl = regexp.MustCompile(`^\s*\.param\s+(?:\.align\s+\d+\s+)?\.[busf](8|16|32|64)\s+\S+?(?:\[(\d+)\])?\s*,?\s*$`)
)

// EntryParams parses the .entry declarations of a PTX module and returns, per
// kernel, the size in bytes of each parameter in order (8 for pointers and
// 64-bit integers, 4 for int and float). The launchers check their argument
// lists against it before every launch.
func EntryParams(ptx []byte) map[string][]int {
	out := map[string][]int{}
	sc := bufio.NewScanner(bytes.NewReader(ptx))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur string
	for sc.Scan() {
		line := sc.Text()
		if cur == "" {
			if m := reEntryDecl.FindStringSubmatch(line); m != nil {
				cur = m[1]
				out[cur] = []int{}
				if strings.Contains(line[strings.Index(line, "(")+1:], ")") {
					cur = "" // no parameters
				}
			}
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), ")") {
			cur = ""
			continue
		}
		if m := reParamDecl.FindStringSubmatch(line); m != nil {
			bits, _ := strconv.Atoi(m[1])
			n := 1
			if m[2] != "" {
				n, _ = strconv.Atoi(m[2])
			}
			out[cur] = append(out[cur], bits/8*n)
		}
	}
	return out
}
