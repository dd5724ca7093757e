package cuda

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed ptx/*.ptx
var ptxFS embed.FS

// ModuleNames returns the names of the embedded PTX modules (the .cu sources
// without extension: "attention", "conv", ...), sorted.
func ModuleNames() []string {
	ents, err := fs.ReadDir(ptxFS, "ptx")
	if err != nil {
		panic("cuda: embedded PTX missing: " + err.Error())
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ptx") {
			names = append(names, strings.TrimSuffix(e.Name(), ".ptx"))
		}
	}
	sort.Strings(names)
	return names
}

// PTX returns the embedded PTX text of module name (see ModuleNames).
func PTX(name string) ([]byte, error) {
	return ptxFS.ReadFile(path.Join("ptx", name+".ptx"))
}

// SourceHashPrefix starts each header line of a generated PTX file that records
// a source it was compiled from: "// roentgo-source: gemm.cu sha256=<hex>".
const SourceHashPrefix = "// roentgo-source: "
