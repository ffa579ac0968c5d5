// Package readmetest holds no code, only the test that keeps README.md
// honest: every Go snippet in it is gofmt-formatted, builds against this
// module as shown, checks the errors it gets, and, where it runs on
// embedded defaults (kmsmock in-process), runs to completion.
package readmetest
