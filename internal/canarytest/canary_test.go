package canarytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestEveryExportedTypeHasAnEntry fails when a public package declares a
// type the table does not list (add it: see the comment above types), or
// when the table lists a type that no longer exists.
func TestEveryExportedTypeHasAnEntry(t *testing.T) {
	declared := exportedTypes(t)
	if len(declared) < 40 {
		t.Fatalf("found only %d exported types (%v): is the module walk broken?", len(declared), declared)
	}
	for _, name := range declared {
		e, ok := types[name]
		switch {
		case !ok:
			t.Errorf("exported type %s has no entry in the canary table (table_test.go)", name)
		case (e.build == nil) == (e.noSecret == ""):
			t.Errorf("entry %s must have exactly one of build and noSecret", name)
		}
	}
	for name := range types {
		if !slices.Contains(declared, name) {
			t.Errorf("the canary table lists %s, which no public package declares", name)
		}
	}
}

// verbs are the fmt verbs every value is formatted with.
var verbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"}

// TestCanariesDoNotPrint formats every value the table builds, and each
// value behind a pointer and inside a struct field, every way a program
// might print or log it, and fails on any canary in the output.
func TestCanariesDoNotPrint(t *testing.T) {
	w := newWorld(t)
	all := make(map[string]entry, len(types)+len(extraTypes))
	for name, e := range types {
		all[name] = e
	}
	for name, e := range extraTypes {
		all[name] = e
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		e := all[name]
		if e.build == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			values := e.build(w)
			if len(values) == 0 {
				t.Fatal("the builder made no value")
			}
			for i, p := range values {
				checkValue(t, fmt.Sprintf("value %d", i), p, w.canaries)
			}
		})
	}
}

// checkValue formats p (a pointer, or an interface holding one), the value
// it points to, and both inside a struct field.
func checkValue(t *testing.T, label string, p any, canaries []string) {
	t.Helper()
	rv := reflect.ValueOf(p)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		t.Fatalf("%s: the builder must return non-nil pointers, got %T", label, p)
	}
	forms := map[string]any{
		"pointer":          p,
		"pointer in field": struct{ Field any }{p},
	}
	// A value holding a lock is never copied by correct code (go vet's
	// copylocks check refuses it), so such types are formatted through
	// pointers only.
	if !containsLock(rv.Elem().Type()) {
		forms["value"] = rv.Elem().Interface()
		forms["value in field"] = struct{ Field any }{rv.Elem().Interface()}
	}
	for form, v := range forms {
		for how, out := range renderings(v) {
			if found := leak(out, canaries); found != "" {
				t.Errorf("%s (%T, %s) leaks %s through %s:\n%s", label, p, form, found, how, out)
			}
		}
	}
}

// containsLock reports whether a value of type t holds, not through a
// pointer, something with Lock and Unlock methods (sync.Mutex, sync.Pool's
// noCopy, atomic values), as go vet's copylocks check defines a lock.
func containsLock(t reflect.Type) bool {
	if t.Kind() != reflect.Interface {
		if _, ok := reflect.PointerTo(t).MethodByName("Lock"); ok {
			if _, ok := reflect.PointerTo(t).MethodByName("Unlock"); ok {
				return true
			}
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			if containsLock(t.Field(i).Type) {
				return true
			}
		}
	case reflect.Array:
		return t.Len() > 0 && containsLock(t.Elem())
	}
	return false
}

// renderings formats v every way the test checks.
func renderings(v any) map[string]string {
	out := make(map[string]string)
	for _, verb := range verbs {
		out["fmt "+verb] = fmt.Sprintf(verb, v)
	}
	out["fmt.Sprint"] = fmt.Sprint(v)
	out["fmt.Sprintln"] = fmt.Sprintln(v)
	if b, err := json.Marshal(v); err == nil {
		out["encoding/json"] = string(b)
	} else {
		// A value json refuses cannot leak through it, but the error text
		// could.
		out["encoding/json error"] = err.Error()
	}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("canary", "v", v)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("canary", "v", v)
	out["slog TextHandler"] = text.String()
	out["slog JSONHandler"] = js.String()
	return out
}

// TestLeakFinder checks the detector itself: each encoding of a canary that
// a formatter could produce is found, and the redacted forms are not.
func TestLeakFinder(t *testing.T) {
	c := []string{canaryKey}
	type holder struct{ B []byte }
	for _, out := range []string{
		fmt.Sprintf("%v", holder{[]byte(canaryKey)}),
		fmt.Sprintf("%#v", holder{[]byte(canaryKey)}),
		fmt.Sprintf("%x", holder{[]byte(canaryKey)}),
		fmt.Sprintf("%X", "x"+canaryKey),
		fmt.Sprintf("%q", canaryKey),
		string(must(json.Marshal(holder{[]byte(canaryKey)}))),
		string(must(json.Marshal(holder{[]byte("ab" + canaryKey)}))),
		string(must(json.Marshal(holder{[]byte("a" + canaryKey + "z")}))),
		"prefix=" + strings.ToUpper(fmt.Sprintf("%x", "a"+canaryKey)),
	} {
		if leak(out, c) == "" {
			t.Errorf("the detector misses the canary in %s", out)
		}
	}
	for _, out := range []string{"[REDACTED]", "branch key #0a1b2c3d", "{Len:32}"} {
		if found := leak(out, c); found != "" {
			t.Errorf("the detector finds %s in %q", found, out)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
