//go:build !unix

package main

import "os"

// keepOwner does nothing on systems without Unix owners.
func keepOwner(*os.File, os.FileInfo) error { return nil }
