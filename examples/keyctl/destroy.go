package main

import "context"

// destroyVersion crypto-shreds one version (custody.BranchKeys.DestroyVersion).
func destroyVersion(ctx context.Context, s *session, id, version string) error {
	return s.keys.DestroyVersion(ctx, id, version)
}

// destroyKey crypto-shreds every version of a key (custody.BranchKeys.DestroyKey).
func destroyKey(ctx context.Context, s *session, id string) error {
	return s.keys.DestroyKey(ctx, id)
}
