package main

import (
	"context"
	"errors"
)

// destroyVersion crypto-shreds one version.
func destroyVersion(ctx context.Context, s *session, id, version string) error {
	_, _, _, _ = ctx, s, id, version
	return errors.New("destroy is not available in this build: the store has no destroyed state yet")
}

// destroyKey crypto-shreds every version of a key.
func destroyKey(ctx context.Context, s *session, id string) error {
	_, _, _ = ctx, s, id
	return errors.New("destroy is not available in this build: the store has no destroyed state yet")
}
