package cli

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// Data flows one way: each package may import only those on lower layers.
// A package on no layer here is a new one: give it a place.
var layers = [][]string{
	{"csvguard", "cas", "casemu", "netpath", "proxytest"},
	{"plan", "report"},
	{"apply"},
	{"job"},
	{"bench"},
	{"cli"},
}

func TestImportsFlowOneWay(t *testing.T) {
	const module = "github.com/certalloc/certalloc/pkg/"
	rank := map[string]int{}
	for i, layer := range layers {
		for _, p := range layer {
			rank[p] = i
		}
	}
	dirs, _ := filepath.Glob(filepath.Join("..", "*"))
	for _, dir := range dirs {
		name := filepath.Base(dir)
		pkg, err := build.Default.ImportDir(dir, 0)
		if err != nil {
			continue // not a package
		}
		r, ok := rank[name]
		if !ok {
			t.Errorf("pkg/%s is on no layer of this test", name)
			continue
		}
		for _, imp := range pkg.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if rank[dep] >= r {
				t.Errorf("pkg/%s imports pkg/%s, which is not on a lower layer", name, dep)
			}
		}
	}
}
