package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A bar (forced, since the test has no terminal) ends at its total;
// plain lines are at most one per interval, and the last always shows.
func TestProgressModes(t *testing.T) {
	for _, tc := range []struct {
		mode, want string
		lines      int
	}{
		{"bar", "40/40", -1},
		{"lines", "rewrap: 40/40 versions\n", 2},
		{"none", "", 0},
		{"auto", "rewrap: 40/40 versions\n", 2}, // a buffer is no terminal
	} {
		var buf bytes.Buffer
		a := &app{stderr: &buf, progress: tc.mode}
		p, err := a.newProgress("rewrap", "versions")
		require.NoError(t, err)
		for i := 0; i <= 40; i++ {
			p.Set(i, 40)
		}
		p.Finish()
		require.Contains(t, buf.String(), tc.want, tc.mode)
		if tc.lines >= 0 {
			require.Equal(t, tc.lines, strings.Count(buf.String(), "\n"), "%s: %q", tc.mode, buf.String())
		}
	}
	_, err := (&app{progress: "fancy"}).newProgress("x", "y")
	require.True(t, isUsage(err))
}
