package s3crypt

import "context"

// WithRewrapHook returns ctx carrying f, which Rewrap calls with the name
// of each step it is about to run (RewrapStepComplete: the write of the
// new object), so a test can change the object in between.
func WithRewrapHook(ctx context.Context, f func(step string)) context.Context {
	return context.WithValue(ctx, rewrapHookKey{}, f)
}

// RewrapStepComplete is the step that writes the new object.
const RewrapStepComplete = hookBeforeComplete
