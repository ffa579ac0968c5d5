package steperr

import (
	"errors"
	"testing"
)

func TestWrapNamesThePackageOnce(t *testing.T) {
	base := errors.New("keyring: no such thing")
	err := Wrap("keyring: ", base, "reading %s", "x")
	if got, want := err.Error(), "keyring: reading x: no such thing"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !errors.Is(err, base) {
		t.Fatal("errors.Is does not see the cause")
	}
	other := Wrap("keyring: ", errors.New("keystore: gone"), "step")
	if got, want := other.Error(), "keyring: step: keystore: gone"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
