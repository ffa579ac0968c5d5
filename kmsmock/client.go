package kmsmock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// NewClient returns an aws-sdk-go-v2 KMS client for the KMS endpoint at url
// (kmsmock, moto_server or any KMS), signing as accessKeyID. With kmsmock the
// access key id names the principal arn:aws:iam::ACCOUNT:user/<accessKeyID>.
func NewClient(url, region, accessKeyID, secretAccessKey string, optFns ...func(*kms.Options)) *kms.Client {
	opts := kms.Options{
		Region:       region,
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKeyID, secretAccessKey, ""),
	}
	return kms.New(opts, optFns...)
}

// Local is a Server listening on a loopback address.
type Local struct {
	*Server
	// URL is the base URL clients use, such as http://127.0.0.1:41234.
	URL string

	http      *http.Server
	done      chan error
	closeOnce sync.Once
	closeErr  error

	// fresh holds connections accepted but not yet used. http.Server's
	// Shutdown waits up to five seconds for those, and HTTP clients often
	// dial a spare connection they never use, so Close closes them itself.
	mu    sync.Mutex
	fresh map[net.Conn]struct{}
}

// Start starts a Server for cfg on addr, which must be a loopback address
// ("" means 127.0.0.1 with a free port). The handler also serves the admin
// endpoint under /_kmsmock/.
func Start(cfg Config, addr string) (*Local, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kmsmock: %w", err)
	}
	return Serve(s, ln), nil
}

// Serve serves s on ln until Close. It does not check the address: callers
// that allow remote clients do so on purpose.
func Serve(s *Server, ln net.Listener) *Local {
	l := &Local{
		Server: s,
		URL:    "http://" + dialAddr(ln.Addr()),
		done:   make(chan error, 1),
		fresh:  map[net.Conn]struct{}{},
	}
	l.http = &http.Server{Handler: s.Mux(), ReadHeaderTimeout: 10 * time.Second, ConnState: l.track}
	go func() { l.done <- l.http.Serve(ln) }()
	return l
}

// dialAddr is the address a client on this host dials to reach a listener:
// a wildcard listener is reached on 127.0.0.1.
func dialAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

func (l *Local) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateNew {
		l.fresh[c] = struct{}{}
	} else {
		delete(l.fresh, c)
	}
}

func (l *Local) closeFresh() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.fresh {
		c.Close()
	}
}

// Mux returns a handler serving KMS at / and the admin endpoint at
// /_kmsmock/.
func (s *Server) Mux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_kmsmock/", s.AdminHandler())
	mux.Handle("/", s)
	return mux
}

// CheckLoopback refuses an address that is not on a loopback interface.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("kmsmock: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("kmsmock: %q is not a loopback address; kmsmock serves 127.0.0.1 or ::1 unless told to allow remote clients", addr)
	}
	return nil
}

// Client returns a KMS client that signs as principal (its access key id).
// When the server checks signatures, the secret comes from
// Config.Credentials.
func (l *Local) Client(principal string, optFns ...func(*kms.Options)) *kms.Client {
	secret := "kmsmock-secret"
	if l.credentials != nil {
		secret = l.credentials[principal]
	}
	return NewClient(l.URL, l.region, principal, secret, optFns...)
}

// Close stops the listener and waits for requests in flight. Calling it
// again returns the first call's result.
func (l *Local) Close() error {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut := make(chan error, 1)
		go func() { shut <- l.http.Shutdown(ctx) }()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
	wait:
		for {
			select {
			case l.closeErr = <-shut:
				break wait
			case <-tick.C:
				l.closeFresh()
			}
		}
		if serveErr := <-l.done; !errors.Is(serveErr, http.ErrServerClosed) && l.closeErr == nil {
			l.closeErr = serveErr
		}
	})
	return l.closeErr
}

// TB is the part of testing.TB that StartTest uses; *testing.T and
// *testing.B satisfy it. (kmsmock does not import package testing, so
// programs that use it do not link it.)
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
}

// StartTest starts a Server for a test on 127.0.0.1 and stops it when the
// test ends.
func StartTest(tb TB, cfg Config) *Local {
	tb.Helper()
	l, err := Start(cfg, "")
	if err != nil {
		tb.Fatalf("kmsmock: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("kmsmock: close: %v", err)
		}
	})
	return l
}
