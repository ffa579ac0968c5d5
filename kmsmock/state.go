package kmsmock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const stateVersion = 1

// persistedState is the -state file: everything needed to serve the same
// keys after a restart, key material included.
type persistedState struct {
	Version int           `json:"version"`
	Region  string        `json:"region"`
	Account string        `json:"account"`
	Offset  time.Duration `json:"clockOffset"`
	Keys    []*key        `json:"keys"`
	Aliases []*alias      `json:"aliases"`
}

func (s *Server) loadState() error {
	b, err := os.ReadFile(s.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kmsmock: reading state: %w", err)
	}
	var st persistedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("kmsmock: state file %s is not valid JSON", s.stateFile)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("kmsmock: state file version %d is not supported (want %d)", st.Version, stateVersion)
	}
	if st.Region != s.region || st.Account != s.account {
		return fmt.Errorf("kmsmock: state file belongs to region %s account %s", st.Region, st.Account)
	}
	s.offset = st.Offset
	for _, k := range st.Keys {
		if err := k.check(); err != nil {
			return fmt.Errorf("kmsmock: state file: %w", err)
		}
		s.keys[k.ID] = k
	}
	for _, a := range st.Aliases {
		if s.keys[a.KeyID] == nil || checkAliasName(a.Name) != nil {
			return errors.New("kmsmock: state file: an alias is malformed or names a missing key")
		}
		s.aliases[a.Name] = a
	}
	return nil
}

// check validates a key read from a state file and parses its policy.
func (k *key) check() error {
	if !isUUID([]byte(k.ID)) || len(k.Backing) == 0 {
		return errors.New("a key has a malformed id or no backing keys")
	}
	for _, b := range k.Backing {
		if len(b) != 32 {
			return errors.New("key " + k.ID + " has a backing key that is not 32 bytes")
		}
	}
	switch k.State {
	case stateEnabled, stateDisabled, statePendingDeletion:
	default:
		return errors.New("key " + k.ID + " has an unknown state")
	}
	if k.RotationEnabled && (k.RotationPeriodDays < minRotationDays || k.RotationPeriodDays > maxRotationDays) {
		return errors.New("key " + k.ID + " has rotation enabled with a period outside 90 to 2560 days")
	}
	p, err := parsePolicy(k.Policy)
	if err != nil {
		return fmt.Errorf("key %s: %w", k.ID, err)
	}
	k.policy = p
	return nil
}

// persist writes the state file if anything changed. It must be called with
// s.mu held. A failed write is logged and retried on the next change; the
// in-memory state stays authoritative.
func (s *Server) persist() {
	if !s.dirty || s.stateFile == "" {
		s.dirty = false
		return
	}
	st := persistedState{Version: stateVersion, Region: s.region, Account: s.account, Offset: s.offset, Keys: s.sortedKeys()}
	for _, a := range s.aliases {
		st.Aliases = append(st.Aliases, a)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = writeFileAtomic(s.stateFile, b)
	}
	if err != nil {
		s.log.Warn("kmsmock: could not save state", "file", s.stateFile, "err", err)
		return
	}
	s.dirty = false
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old file or the new one: write a temporary file in the same directory,
// fsync it, rename it over path, and fsync the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
