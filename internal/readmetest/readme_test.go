package readmetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/format"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmePath is README.md, from this package's directory (where go test runs
// its tests).
const readmePath = "../../README.md"

// snippetDir is where the snippets are built, relative to the module root.
// Nothing is written there: go's -overlay flag places each snippet as a
// virtual file, so an interrupted test leaves no stray package behind.
const snippetDir = "internal/readmetest/snippets"

// runTimeout bounds one snippet's run on embedded defaults.
const runTimeout = 3 * time.Minute

// block is one fenced code block of the README.
type block struct {
	lang string
	line int // README line of the block's first line of code (1-based)
	src  []byte
}

// snippet is a Go block placed in the module for building.
type snippet struct {
	block
	test bool   // a _test.go file (its package clause is not main)
	pkg  string // package directory, relative to the module root
	file string // the file's path inside the module
}

// TestREADMESnippets builds every ```go block of README.md against this
// module, as shown: each must be a whole file (a main package, or a test
// file when its package clause names a _test package), gofmt-formatted,
// must build, and must not discard an error. Programs that import kmsmock
// run on embedded defaults and must exit 0; test files are compiled with
// go test -c and must pass. A failure names the README line. The go command
// is the one on PATH (go test puts its own first).
func TestREADMESnippets(t *testing.T) {
	blocks := readBlocks(t)
	snips := goSnippets(t, blocks)
	root := moduleRoot(t)
	for _, s := range snips {
		checkFormatted(t, s)
	}
	if t.Failed() {
		return
	}
	overlay := writeOverlay(t, root, snips)
	mains := buildMains(t, root, overlay, snips)
	tests := buildTests(t, root, overlay, snips)
	if t.Failed() {
		return
	}
	checkErrorsUsed(t, root, overlay, snips)
	runSnippets(t, mains, tests, snips)
}

// TestREADMEJSONBlocks parses every ```json block (the IAM policies).
func TestREADMEJSONBlocks(t *testing.T) {
	n := 0
	for _, b := range readBlocks(t) {
		if b.lang != "json" {
			continue
		}
		n++
		var v any
		if err := json.Unmarshal(b.src, &v); err != nil {
			t.Errorf("README.md:%d: the JSON block does not parse: %v", b.line, err)
		}
	}
	if n == 0 {
		t.Fatal("README.md has no ```json block (the IAM policies); did the fences change?")
	}
}

// TestREADMECoversSetUp checks that the snippets show what a newcomer must
// build: the hierarchical keyring fieldenc needs, from a store and a KMS
// client, and a production KMS client from the AWS default configuration.
func TestREADMECoversSetUp(t *testing.T) {
	var all []byte
	for _, s := range goSnippets(t, readBlocks(t)) {
		all = append(all, s.src...)
	}
	for _, call := range []string{
		"keyring.NewKMS(", "phicrypt.New(", "phicrypt.NewCache(",
		"keyring.NewBranchKeys(", ".CreateBranchKey(", "keyring.NewHierarchical(", "CacheTTL:", "MaxUsesPerVersion:",
		"fieldenc.New(", "fieldenc.NewCodec[", ".Seal(", ".Open(", ".IndexValues(",
		"config.LoadDefaultConfig(", "kms.NewFromConfig(", "kmsmock.StartTest(",
	} {
		if !bytes.Contains(all, []byte(call)) {
			t.Errorf("no README snippet contains %s", call)
		}
	}
}

// TestExtractBlocks pins the fence parsing the other tests rely on.
func TestExtractBlocks(t *testing.T) {
	md := "# t\n\n```go\npackage main\n```\ntext\n```sh\necho hi\n```\n\n```go\npackage x_test\n\nfunc f() {}\n```\n"
	got, err := extractBlocks(strings.NewReader(md))
	if err != nil {
		t.Fatal(err)
	}
	want := []block{
		{lang: "go", line: 4, src: []byte("package main\n")},
		{lang: "sh", line: 8, src: []byte("echo hi\n")},
		{lang: "go", line: 12, src: []byte("package x_test\n\nfunc f() {}\n")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].lang != want[i].lang || got[i].line != want[i].line || !bytes.Equal(got[i].src, want[i].src) {
			t.Errorf("block %d: got %q at line %d (%q), want %q at line %d (%q)",
				i, got[i].lang, got[i].line, got[i].src, want[i].lang, want[i].line, want[i].src)
		}
	}
	if _, err := extractBlocks(strings.NewReader("```go\npackage main\n")); err == nil {
		t.Error("an unterminated block was accepted")
	}
}

// TestBuildFailureNamesREADMELine proves the build step fails, naming the
// README line, when a snippet stops compiling.
func TestBuildFailureNamesREADMELine(t *testing.T) {
	root := moduleRoot(t)
	src := "package main\n\nimport \"github.com/phicrypt/phicrypt/keyring\"\n\nfunc main() {\n\tkeyring.NoSuchFunction()\n}\n"
	s := newSnippet(block{lang: "go", line: 100, src: []byte(src)})
	ft := &fakeT{T: t}
	buildMains(ft, root, writeOverlay(t, root, []snippet{s}), []snippet{s})
	if !ft.failed || !strings.Contains(ft.msg, "README.md:105:") {
		t.Fatalf("a broken snippet at README line 100 (error on its line 6) gave failed=%v, message:\n%s", ft.failed, ft.msg)
	}
}

// TestFailingRunIsReported proves a snippet that builds but fails when run
// fails the test, naming the README line.
func TestFailingRunIsReported(t *testing.T) {
	root := moduleRoot(t)
	src := "package main\n\nimport \"os\"\n\nfunc main() { os.Exit(3) }\n"
	s := newSnippet(block{lang: "go", line: 40, src: []byte(src)})
	bins := buildMains(t, root, writeOverlay(t, root, []snippet{s}), []snippet{s})
	ft := &fakeT{T: t}
	run(ft, s, bins[s.line])
	if !ft.failed || !strings.Contains(ft.msg, "README.md:40:") || !strings.Contains(ft.msg, "exit status 3") {
		t.Fatalf("a snippet exiting 3 gave failed=%v, message:\n%s", ft.failed, ft.msg)
	}
}

// TestIgnoredErrorIsReported proves the error check finds a discarded
// error, both as a statement and assigned to _.
func TestIgnoredErrorIsReported(t *testing.T) {
	root := moduleRoot(t)
	src := "package main\n\nimport \"os\"\n\nfunc main() {\n\tos.Remove(\"x\")\n\t_ = os.Remove(\"y\")\n\tf, _ := os.Open(\"z\")\n\t_ = f\n}\n"
	s := newSnippet(block{lang: "go", line: 10, src: []byte(src)})
	ft := &fakeT{T: t}
	checkErrorsUsed(ft, root, writeOverlay(t, root, []snippet{s}), []snippet{s})
	for _, line := range []string{"README.md:15:", "README.md:16:", "README.md:17:"} {
		if !strings.Contains(ft.msg, line) {
			t.Errorf("the ignored error at %s was not reported; messages:\n%s", line, ft.msg)
		}
	}
}

// tb is the part of testing.T the steps use, so the negative tests can
// watch a step fail.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

// fakeT records failures instead of failing the test.
type fakeT struct {
	*testing.T
	failed bool
	msg    string
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.failed = true
	f.msg += fmt.Sprintf(format, args...) + "\n"
}

func (f *fakeT) Fatalf(format string, args ...any) { f.Errorf(format, args...) }

func readBlocks(t tb) []block {
	t.Helper()
	f, err := os.Open(readmePath)
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer f.Close()
	blocks, err := extractBlocks(f)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	return blocks
}

// extractBlocks returns the fenced code blocks of a Markdown document.
func extractBlocks(r io.Reader) ([]block, error) {
	var (
		blocks []block
		cur    *block
		n      int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.src = append(append(cur.src, line...), '\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: the code block never ends", cur.line-1)
	}
	return blocks, nil
}

func goSnippets(t tb, blocks []block) []snippet {
	t.Helper()
	var snips []snippet
	for _, b := range blocks {
		if b.lang == "go" {
			snips = append(snips, newSnippet(b))
		}
	}
	if len(snips) == 0 {
		t.Fatalf("README.md has no ```go block; did the fences change?")
	}
	return snips
}

var testPackage = regexp.MustCompile(`(?m)^package \w+_test$`)

func newSnippet(b block) snippet {
	s := snippet{block: b, test: testPackage.Match(b.src)}
	s.pkg = fmt.Sprintf("%s/l%d", snippetDir, b.line)
	name := "main.go"
	if s.test {
		name = "snippet_test.go"
	}
	s.file = s.pkg + "/" + name
	return s
}

// readmeLine maps a line of snippet s to the README's line.
func (s snippet) readmeLine(n int) int { return s.line + n - 1 }

func checkFormatted(t tb, s snippet) {
	t.Helper()
	// format.Source also accepts fragments (statement lists), so parse as a
	// file first: a snippet must be whole to build as shown.
	f, err := parser.ParseFile(token.NewFileSet(), "", s.src, 0)
	if err != nil {
		t.Errorf("README.md:%d: the snippet is not a whole Go file (package clause, imports, declarations): %s",
			s.line, remapMessage(err.Error(), s))
		return
	}
	if !s.test && f.Name.Name != "main" {
		t.Errorf("README.md:%d: a Go snippet is a main package (a program) or a _test package (a test file), not package %s", s.line, f.Name.Name)
	}
	got, err := format.Source(s.src)
	if err != nil {
		t.Errorf("README.md:%d: gofmt: %v", s.line, err)
		return
	}
	if !bytes.Equal(got, s.src) {
		t.Errorf("README.md:%d: the snippet is not gofmt-formatted; gofmt gives:\n%s", s.line, got)
	}
}

// remapMessage rewrites "N:M:" positions that go/parser reports against a
// bare source into README lines.
func remapMessage(msg string, s snippet) string {
	return regexp.MustCompile(`^(\d+):`).ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(strings.TrimSuffix(m, ":"))
		return fmt.Sprintf("README.md:%d:", s.readmeLine(n))
	})
}

func moduleRoot(t tb) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module root is not two levels up: %v", err)
	}
	return root
}

// writeOverlay writes the snippets to a temporary directory and returns
// the -overlay file that places them in the module.
func writeOverlay(t tb, root string, snips []snippet) string {
	t.Helper()
	dir := t.TempDir()
	replace := map[string]string{}
	for _, s := range snips {
		// The same base names as the virtual files, so that compile errors,
		// which name the real file, map back to README lines too.
		real := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(s.file, snippetDir+"/")))
		if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
			t.Fatalf("%v", err)
		}
		if err := os.WriteFile(real, s.src, 0o600); err != nil {
			t.Fatalf("%v", err)
		}
		replace[filepath.Join(root, filepath.FromSlash(s.file))] = real
	}
	js, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatalf("%v", err)
	}
	path := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	return path
}

// goCommand runs the go command in the module root.
func goCommand(ctx context.Context, root string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	return cmd.CombinedOutput()
}

// buildMains builds the main-package snippets into a temporary directory
// and returns their binaries by snippet line.
func buildMains(t tb, root, overlay string, snips []snippet) map[int]string {
	t.Helper()
	bin := t.TempDir()
	args := []string{"build", "-overlay", overlay, "-o", bin + string(filepath.Separator)}
	var mains []snippet
	for _, s := range snips {
		if !s.test {
			mains = append(mains, s)
			args = append(args, "./"+s.pkg)
		}
	}
	if len(mains) == 0 {
		return nil
	}
	if out, err := goCommand(context.Background(), root, args...); err != nil {
		t.Errorf("README snippets do not build (%v):\n%s", err, remapOutput(out, snips))
		return nil
	}
	bins := map[int]string{}
	for _, s := range mains {
		bins[s.line] = filepath.Join(bin, filepath.Base(s.pkg))
	}
	return bins
}

// buildTests compiles the test-file snippets with go test -c (go test
// itself would run them, and vet, in the package directory, which exists
// only in the overlay) and returns their binaries by snippet line.
func buildTests(t tb, root, overlay string, snips []snippet) map[int]string {
	t.Helper()
	bin := t.TempDir()
	args := []string{"test", "-c", "-vet=off", "-overlay", overlay, "-o", bin + string(filepath.Separator)}
	var tests []snippet
	for _, s := range snips {
		if s.test {
			tests = append(tests, s)
			args = append(args, "./"+s.pkg)
		}
	}
	if len(tests) == 0 {
		return nil
	}
	if out, err := goCommand(context.Background(), root, args...); err != nil {
		t.Errorf("README test snippets do not build (%v):\n%s", err, remapOutput(out, snips))
		return nil
	}
	bins := map[int]string{}
	for _, s := range tests {
		bins[s.line] = filepath.Join(bin, filepath.Base(s.pkg)+".test")
	}
	return bins
}

// runSnippets runs every test-file snippet, and every program that imports
// kmsmock (those need nothing outside the process), and requires each to
// succeed.
func runSnippets(t tb, mains, tests map[int]string, snips []snippet) {
	t.Helper()
	for _, s := range snips {
		switch {
		case s.test:
			run(t, s, tests[s.line], "-test.count=1")
		case bytes.Contains(s.src, []byte(`"github.com/phicrypt/phicrypt/kmsmock"`)):
			run(t, s, mains[s.line])
		}
	}
}

// run runs a snippet's binary in a temporary directory, with a timeout,
// and requires it to succeed.
func run(t tb, s snippet, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("README.md:%d: the snippet runs on embedded defaults but failed (%v):\n%s", s.line, err, remapOutput(out, []snippet{s}))
	}
}

// remapOutput rewrites the go command's file:line positions in snippets
// into README.md lines.
func remapOutput(out []byte, snips []snippet) string {
	byDir := map[string]snippet{}
	for _, s := range snips {
		byDir[filepath.Base(s.pkg)] = s
	}
	pos := regexp.MustCompile(`(?:[\w./\\-]*[/\\])?(l\d+)[/\\](?:main|snippet_test)\.go:(\d+)`)
	text := pos.ReplaceAllStringFunc(string(out), func(m string) string {
		sub := pos.FindStringSubmatch(m)
		s, ok := byDir[sub[1]]
		if !ok {
			return m
		}
		n, _ := strconv.Atoi(sub[2])
		return fmt.Sprintf("README.md:%d", s.readmeLine(n))
	})
	if len(snips) == 1 { // a test binary's own output names the bare file
		bare := regexp.MustCompile(`\b(?:main|snippet_test)\.go:(\d+)`)
		text = bare.ReplaceAllStringFunc(text, func(m string) string {
			n, _ := strconv.Atoi(bare.FindStringSubmatch(m)[1])
			return fmt.Sprintf("README.md:%d", snips[0].readmeLine(n))
		})
	}
	return text
}

// checkErrorsUsed type-checks each snippet against the export data of
// its dependencies and reports every error result that a statement drops
// or assigns to _. Deferred calls (cleanup such as Close) and fmt's
// printing functions are exempt.
func checkErrorsUsed(t tb, root, overlay string, snips []snippet) {
	t.Helper()
	exports := exportData(t, root, overlay, snips)
	if exports == nil {
		return
	}
	for _, s := range snips {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, s.file, s.src, 0)
		if err != nil {
			t.Errorf("README.md:%d: %v", s.line, err)
			continue
		}
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
		conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
			file, ok := exports[path]
			if !ok {
				return nil, fmt.Errorf("no export data for %s", path)
			}
			return os.Open(file)
		})}
		if _, err := conf.Check(s.pkg, fset, []*ast.File{f}, info); err != nil {
			t.Errorf("README.md:%d: the snippet does not type-check: %v", s.line, err)
			continue
		}
		for _, n := range droppedErrors(f, info) {
			t.Errorf("README.md:%d: an error is ignored; check it", s.readmeLine(fset.Position(n.Pos()).Line))
		}
	}
}

// exportData compiles the snippets' dependencies and returns their export
// data files by import path.
func exportData(t tb, root, overlay string, snips []snippet) map[string]string {
	t.Helper()
	args := []string{"list", "-overlay", overlay, "-deps", "-test", "-export", "-f", "{{if .Export}}{{.ImportPath}}={{.Export}}{{end}}"}
	for _, s := range snips {
		args = append(args, "./"+s.pkg)
	}
	out, err := goCommand(context.Background(), root, args...)
	if err != nil {
		t.Errorf("go list of the README snippets' dependencies (%v):\n%s", err, remapOutput(out, snips))
		return nil
	}
	exports := map[string]string{}
	for line := range strings.Lines(string(out)) {
		path, file, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.Contains(path, " ") { // skip test variants "p [p.test]"
			exports[path] = file
		}
	}
	return exports
}

var errorType = types.Universe.Lookup("error").Type()

// droppedErrors returns the calls whose error result is dropped.
func droppedErrors(f *ast.File, info *types.Info) []ast.Node {
	var dropped []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.DeferStmt:
			return false
		case *ast.ExprStmt:
			if call, ok := n.X.(*ast.CallExpr); ok && !printing(call, info) && slices.ContainsFunc(results(info.TypeOf(call)), isError) {
				dropped = append(dropped, n)
			}
		case *ast.AssignStmt:
			if blankError(n, info) {
				dropped = append(dropped, n)
			}
		}
		return true
	})
	return dropped
}

// blankError reports whether an assignment gives an error to _.
func blankError(n *ast.AssignStmt, info *types.Info) bool {
	var rhs []types.Type
	if len(n.Rhs) == 1 && len(n.Lhs) > 1 {
		rhs = results(info.TypeOf(n.Rhs[0]))
	} else {
		for _, e := range n.Rhs {
			rhs = append(rhs, info.TypeOf(e))
		}
	}
	for i, lhs := range n.Lhs {
		if id, ok := lhs.(*ast.Ident); ok && id.Name == "_" && i < len(rhs) && isError(rhs[i]) {
			return true
		}
	}
	return false
}

// results flattens a call's result type.
func results(t types.Type) []types.Type {
	tuple, ok := t.(*types.Tuple)
	if !ok {
		return []types.Type{t}
	}
	var ts []types.Type
	for v := range tuple.Variables() {
		ts = append(ts, v.Type())
	}
	return ts
}

func isError(t types.Type) bool { return t != nil && types.Identical(t, errorType) }

// printing reports whether call is one of fmt's Print or Fprint functions,
// whose errors programs conventionally ignore.
func printing(call *ast.CallExpr, info *types.Info) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	fn, ok := info.Uses[sel.Sel].(*types.Func)
	return ok && fn.Pkg() != nil && fn.Pkg().Path() == "fmt" &&
		(strings.HasPrefix(fn.Name(), "Print") || strings.HasPrefix(fn.Name(), "Fprint"))
}
