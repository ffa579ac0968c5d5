package main

import (
	"encoding/json"
	"fmt"
)

// print writes v as indented JSON with --json, else what human writes.
// Every JSON document is one object whose fields are named in snake_case
// and only ever added to, so scripts can rely on them.
func (a *app) print(v any, human func()) error {
	if !a.json {
		human()
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// printf writes a line of human output.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.stdout, format, args...)
}
