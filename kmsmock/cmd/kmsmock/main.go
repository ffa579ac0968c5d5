// Command kmsmock runs kmsmock, an AWS KMS emulator that speaks the KMS JSON
// 1.1 protocol over HTTP, for tests, local development and CI.
//
// Usage:
//
//	kmsmock [-addr 127.0.0.1:4599] [-region us-east-1] [-account 111122223333]
//	        [-state FILE] [-seed FILE] [-allow-remote] [-log-level info]
//
// Once it listens, kmsmock prints its base URL (for example
// http://127.0.0.1:4599) as the first line of standard output; with
// -addr 127.0.0.1:0 it picks a free port, and scripts read the URL from that
// line. Point any AWS SDK at the URL as its KMS endpoint, with the region of
// -region and any access key: the access key id names the caller, as the IAM
// user arn:aws:iam::ACCOUNT:user/<access key id>. Logs go to standard error.
// SIGINT or SIGTERM stops it cleanly (exit status 0).
//
// -state FILE keeps keys, aliases and the clock across restarts: it is loaded
// at start if it exists and rewritten atomically after every change. It holds
// key material, so kmsmock writes it with mode 0600; keep it out of
// repositories. -seed FILE creates the keys and aliases it lists (see
// kmsmock.Seed) unless they exist already, so a seed and a state file can be
// used together.
//
// Besides KMS, the server answers an admin endpoint, without authentication,
// which lets tests in any language drive it:
//
//	GET    /_kmsmock/calls                     per-operation call counts
//	GET    /_kmsmock/trail                     the request trail, oldest first
//	PUT    /_kmsmock/faults/{op}               inject latency, drops, throttling or errors ({op} "*" = all)
//	DELETE /_kmsmock/faults                    clear every fault and the outage
//	PUT    /_kmsmock/outage {"outage": true}   drop every connection until switched off
//	POST   /_kmsmock/clock {"advance": "720h"} advance the clock: due deletions and rotations happen
//
// Because that endpoint is open and the emulator is not a KMS, kmsmock refuses
// to listen on a non-loopback address unless -allow-remote is given.
// With a wildcard address such as 0.0.0.0:4599, the URL printed is the local
// one, http://127.0.0.1:4599.
//
// Exit status: 0 after a clean shutdown, 1 when it cannot start, 2 for a
// usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/phicrypt/phicrypt/kmsmock"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command-line flags.
type options struct {
	addr, region, account string
	stateFile, seedFile   string
	allowRemote           bool
	level                 slog.Level
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run is the whole program: it serves until ctx is done and returns the exit
// status. The base URL is the first line written to stdout; logs go to
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var uerr usageError
	if errors.As(err, &uerr) {
		fmt.Fprintf(stderr, "kmsmock: %s (kmsmock -h for usage)\n", strings.TrimPrefix(uerr.msg, "kmsmock: "))
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.level}))
	l, err := start(opts, log)
	if err != nil {
		log.Error("kmsmock could not start", "err", err)
		return exitFailure
	}
	url := l.URL
	if _, err := fmt.Fprintln(stdout, url); err != nil {
		log.Error("kmsmock could not print its URL", "err", err)
		l.Close()
		return exitFailure
	}
	log.Info("kmsmock listening", "url", url, "region", l.Region(), "account", l.Account(), "state", opts.stateFile)
	<-ctx.Done()
	return shutdown(l, log)
}

// parseArgs parses the command line. Errors are usageErrors, or
// flag.ErrHelp after printing the usage for -h.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	var opts options
	var level string
	fs := flag.NewFlagSet("kmsmock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.addr, "addr", "127.0.0.1:4599", "listen `address` (port 0 picks a free port)")
	fs.StringVar(&opts.region, "region", kmsmock.DefaultRegion, "AWS `region` in ARNs; requests must be signed for it")
	fs.StringVar(&opts.account, "account", kmsmock.DefaultAccount, "12-digit AWS `account` id in ARNs")
	fs.StringVar(&opts.stateFile, "state", "", "persist keys and aliases in `FILE` (holds key material)")
	fs.StringVar(&opts.seedFile, "seed", "", "create the keys and aliases listed in JSON `FILE` at start")
	fs.BoolVar(&opts.allowRemote, "allow-remote", false, "allow a non-loopback -addr (the admin endpoint is unauthenticated)")
	fs.StringVar(&level, "log-level", "info", "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: kmsmock [flags]")
			fs.PrintDefaults()
			return opts, err
		}
		return opts, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return opts, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	var ok bool
	if opts.level, ok = logLevels[level]; !ok {
		return opts, usageError{fmt.Sprintf("-log-level %q: want debug, info, warn or error", level)}
	}
	if err := checkAddr(opts); err != nil {
		return opts, usageError{err.Error()}
	}
	return opts, nil
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// checkAddr refuses a malformed -addr, and a non-loopback one without
// -allow-remote.
func checkAddr(opts options) error {
	if _, _, err := net.SplitHostPort(opts.addr); err != nil {
		return fmt.Errorf("-addr %q: %v", opts.addr, err)
	}
	if opts.allowRemote {
		return nil
	}
	if err := kmsmock.CheckLoopback(opts.addr); err != nil {
		return fmt.Errorf("%v; pass -allow-remote to listen on it anyway", err)
	}
	return nil
}

// start creates the server (loading the state file), applies the seed and
// starts serving.
func start(opts options, log *slog.Logger) (*kmsmock.Local, error) {
	s, err := kmsmock.New(kmsmock.Config{
		Region:    opts.region,
		Account:   opts.account,
		StateFile: opts.stateFile,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	if err := applySeed(s, opts.seedFile, log); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return nil, fmt.Errorf("kmsmock: %w", err)
	}
	if opts.allowRemote && kmsmock.CheckLoopback(opts.addr) != nil {
		log.Warn("kmsmock accepts remote clients; its admin endpoint has no authentication", "addr", ln.Addr().String())
	}
	return kmsmock.Serve(s, ln), nil
}

func applySeed(s *kmsmock.Server, path string, log *slog.Logger) error {
	if path == "" {
		return nil
	}
	sd, err := kmsmock.ReadSeed(path)
	if err != nil {
		return err
	}
	if err := s.ApplySeed(sd); err != nil {
		return err
	}
	log.Info("kmsmock applied seed", "file", path, "keys", len(sd.Keys))
	return nil
}

// shutdown stops the listener and waits for requests in flight.
func shutdown(l *kmsmock.Local, log *slog.Logger) int {
	log.Info("kmsmock shutting down")
	if err := l.Close(); err != nil {
		log.Error("kmsmock did not shut down cleanly", "err", err)
		return exitFailure
	}
	log.Info("kmsmock stopped")
	return exitOK
}
