package kmsmock

import (
	"encoding/json"
	"net/http"
	"time"
)

// AdminHandler serves kmsmock's admin endpoint, which drives from outside
// the process what Go callers set with methods:
//
//	GET  /_kmsmock/calls                      per-operation call counts
//	GET  /_kmsmock/trail                      the trail, oldest first
//	PUT  /_kmsmock/faults/{op}                a Fault as JSON ({op} "*" = every operation)
//	DELETE /_kmsmock/faults                   clear every fault and the outage
//	PUT  /_kmsmock/outage  {"outage": true}   switch a full outage on or off
//	POST /_kmsmock/clock   {"advance": "720h"} advance the clock
//
// It has no authentication of its own: it is meant for a loopback listener.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_kmsmock/calls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.CallCounts())
	})
	mux.HandleFunc("GET /_kmsmock/trail", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Trail())
	})
	mux.HandleFunc("PUT /_kmsmock/faults/{op}", func(w http.ResponseWriter, r *http.Request) {
		var f struct {
			Latency, Jitter                           string
			DropRate, ThrottleRate, InternalErrorRate float64
		}
		op := r.PathValue("op")
		if op == "*" {
			op = ""
		}
		if !readJSON(w, r, &f) {
			return
		}
		fault := Fault{DropRate: f.DropRate, ThrottleRate: f.ThrottleRate, InternalErrorRate: f.InternalErrorRate}
		var err1, err2 error
		fault.Latency, err1 = parseDuration(f.Latency)
		fault.Jitter, err2 = parseDuration(f.Jitter)
		if err1 != nil || err2 != nil || !fault.valid() || (op != "" && operations[op] == nil) {
			http.Error(w, "want a known operation (or *), durations such as 50ms and rates in [0, 1]", http.StatusBadRequest)
			return
		}
		s.SetFault(op, fault)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_kmsmock/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /_kmsmock/outage", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Outage bool }
		if !readJSON(w, r, &body) {
			return
		}
		s.SetOutage(body.Outage)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_kmsmock/clock", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Advance string }
		if !readJSON(w, r, &body) {
			return
		}
		d, err := time.ParseDuration(body.Advance)
		if err != nil || d < 0 {
			http.Error(w, `want {"advance": "<non-negative Go duration>"}`, http.StatusBadRequest)
			return
		}
		s.Advance(d)
		writeJSON(w, map[string]time.Time{"now": s.Now()})
	})
	return mux
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(v); err != nil {
		http.Error(w, "the body is not the JSON this endpoint takes", http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
