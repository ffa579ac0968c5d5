// Command keyctl is the key custodians' tool: it creates, rotates and
// rewraps branch keys, carries out the changes a quorum of custodians
// approved (retire, disable, enable, destroy, rewrap, the trust policy),
// generates and checks KMS key policies, verifies the audit log and backs
// the store up.
//
//	keyctl init identity --name alice --out alice.key
//	keyctl init --store file:/var/lib/phi/keys --kms-key ARN --identity alice.key
//	keyctl propose set-policy --custodian alice=PUB --custodian bob=PUB ... --quorum 2 -o policy.json
//	keyctl approve policy.json; keyctl approve policy.json --identity bob.key; keyctl apply policy.json
//	keyctl create tenant-7
//	keyctl destroy tenant-7 --version V -o destroy.json   # a proposal
//	keyctl approve destroy.json --identity bob.key        # each custodian
//	keyctl apply destroy.json                             # once M of N signed
//	keyctl audit verify
//
// Changes go through custody.Authority and custody.Executor: a request,
// Ed25519 approvals by custodians of the trust policy in force, then the
// change, each step in the verifiable audit log.
//
// keyctl has no path to plaintext: it has no decrypt command, it never
// unwraps a branch key (custody only asks KMS for
// GenerateDataKeyWithoutPlaintext and ReEncrypt), and the KMS principal
// it runs as is the custodian's own, which the key policy keyctl generates
// refuses Decrypt.
//
// Exit status: 0 on success, 1 when anything fails at run time, 2 for a
// usage error. Errors are one line on standard error, starting "keyctl: ".
// Run keyctl --help for every command; README.md beside this file explains
// the configuration and the quorum.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// run is the whole program: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "keyctl: %s\n", oneLine(strings.TrimPrefix(err.Error(), "keyctl: ")))
	if isUsage(err) {
		return exitUsage
	}
	return exitFailure
}

// isUsage tells a usage error: ours, or cobra's for an unknown command or
// flag (cobra has no error types for those, only its messages).
func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag", "unknown shorthand flag", "required flag", "invalid argument ", "flag needs an argument", "accepts ", "requires at least"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// oneLine keeps an error on one line of standard error.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
