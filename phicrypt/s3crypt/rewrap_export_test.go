package s3crypt

import "context"

// WithRewrapHook returns ctx carrying f, which Rewrap calls with the name
// of each step it is about to run, so a test can change the object in
// between.
func WithRewrapHook(ctx context.Context, f func(step string)) context.Context {
	return context.WithValue(ctx, rewrapHookKey{}, f)
}

// Rewrap's steps: the download of the old body, the server-side copy of
// its other parts (large objects), the write of the new object.
const (
	RewrapStepBody     = hookBeforeBody
	RewrapStepCopy     = hookBeforeCopy
	RewrapStepComplete = hookBeforeComplete
)
