package kmsmock

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Defaults match the examples in the AWS KMS documentation.
const (
	DefaultRegion  = "us-east-1"
	DefaultAccount = "111122223333"

	maxRequestBytes = 256 << 10
	targetPrefix    = "TrentService."
)

// Config configures a Server. The zero value is ready to use.
type Config struct {
	// Region and Account appear in every ARN (defaults us-east-1 and
	// 111122223333). Requests must be signed for Region.
	Region  string
	Account string

	// Now is the wall clock (default time.Now). Advance moves the server's
	// clock ahead of it, so scheduled deletions and automatic rotations
	// really happen in tests.
	Now func() time.Time

	// Credentials, when set, maps access key ids to secret keys: requests are
	// then refused unless their SigV4 signature verifies. When nil, any
	// well-formed SigV4 Authorization header is accepted and its access key id
	// names the principal.
	Credentials map[string]string

	// StateFile, when set, is loaded by New if it exists and rewritten
	// atomically after every change. It holds key material: keep it private.
	StateFile string

	// TrailCapacity bounds the in-memory trail (default 10000 events; older
	// events are dropped first).
	TrailCapacity int

	// Logger receives one debug line per request and warnings for state-file
	// failures (default: discard).
	Logger *slog.Logger
}

// Server is an AWS KMS emulator: an http.Handler for the KMS JSON 1.1
// protocol. It is safe for concurrent use.
type Server struct {
	region, account string
	now             func() time.Time
	credentials     map[string]string
	stateFile       string
	log             *slog.Logger

	mu      sync.Mutex
	offset  time.Duration
	keys    map[string]*key
	aliases map[string]*alias
	dirty   bool

	faults  faultSet
	metrics metrics
}

var (
	regionPattern  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
)

// New returns a Server for cfg, loading cfg.StateFile if it exists.
func New(cfg Config) (*Server, error) {
	s := &Server{
		region:      cfg.Region,
		account:     cfg.Account,
		now:         cfg.Now,
		credentials: cfg.Credentials,
		stateFile:   cfg.StateFile,
		log:         cfg.Logger,
		keys:        map[string]*key{},
		aliases:     map[string]*alias{},
	}
	if s.region == "" {
		s.region = DefaultRegion
	}
	if s.account == "" {
		s.account = DefaultAccount
	}
	if !regionPattern.MatchString(s.region) {
		return nil, fmt.Errorf("kmsmock: region %q is not a region name such as us-east-1", s.region)
	}
	if !accountPattern.MatchString(s.account) {
		return nil, errors.New("kmsmock: account must be 12 digits")
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.faults.init()
	s.metrics.init(cfg.TrailCapacity)
	if s.stateFile != "" {
		if err := s.loadState(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Region returns the server's region.
func (s *Server) Region() string { return s.region }

// Account returns the server's account id.
func (s *Server) Account() string { return s.account }

// Now returns the server's clock: the wall clock plus every Advance.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock()
}

func (s *Server) clock() time.Time { return s.now().Add(s.offset).UTC() }

// Advance moves the server's clock forward by d and carries out what falls
// due: keys whose deletion date passes are deleted with their aliases, and
// keys with automatic rotation enabled rotate.
func (s *Server) Advance(d time.Duration) {
	if d < 0 {
		panic("kmsmock: Advance with a negative duration")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
	s.sweep(s.clock())
	s.persist()
}

// call is one request in flight.
type call struct {
	s         *Server
	op        string
	principal string
	now       time.Time
	// keyARN and context are what the trail records of the request.
	keyARN  string
	context map[string]string
	// reEncrypt names the source and destination keys of a ReEncrypt call
	// (resolved key ids, "" until known), for kms:ReEncryptOnSameKey.
	reEncrypt struct{ source, destination string }
}

type opFunc func(c *call, body []byte) (any, *apiError)

// ServeHTTP implements the KMS JSON 1.1 protocol: POST with
// X-Amz-Target: TrentService.<Operation>.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, targetPrefix)
	fn := operations[name]
	if r.Method != http.MethodPost || !ok || fn == nil {
		writeError(w, errorf(codeUnknownOperation, "unknown operation; send POST with X-Amz-Target: TrentService.<Operation>"))
		return
	}
	principal, aerr := s.authenticate(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	c := &call{s: s, op: name, principal: principal}
	s.metrics.count(name)
	if s.injectFault(w, r, c) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		s.finish(w, c, nil, errorf(codeSerialization, "could not read the request body"))
		return
	}
	if len(body) > maxRequestBytes {
		s.finish(w, c, nil, errValidation("the request body is larger than 256 KiB"))
		return
	}
	resp, aerr := s.run(c, fn, body)
	s.finish(w, c, resp, aerr)
}

// run executes an operation under the state lock, after carrying out what the
// clock has made due, and persists any change.
func (s *Server) run(c *call, fn opFunc, body []byte) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.now = s.clock()
	s.sweep(c.now)
	resp, aerr := fn(c, body)
	s.persist()
	return resp, aerr
}

func (s *Server) finish(w http.ResponseWriter, c *call, resp any, aerr *apiError) {
	result := "Success"
	if aerr != nil {
		result = aerr.code
	}
	s.metrics.record(c, result, s.Now())
	s.log.Debug("kms request", "op", c.op, "principal", c.principal, "result", result)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(resp); err != nil {
		writeError(w, errInternal())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.code, e.msg})
}

// decode parses a request body into T. KMS treats an empty body as an empty
// object.
func decode[T any](body []byte) (*T, *apiError) {
	v := new(T)
	if len(bytes.TrimSpace(body)) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, errorf(codeSerialization, "the request body is not valid JSON for this operation")
	}
	return v, nil
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
