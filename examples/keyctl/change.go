package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/phicrypt/phicrypt/custody"
)

// Changes (create, rotate, retire, disable, enable, destroy, rewrap and
// set-policy) are custody.Requests: a custodian proposes one, custodians
// approve it with their Ed25519 identity (custody.Signer), and apply
// carries it out once custody.Authority.Authorize accepts the approvals:
// the quorum of the trust policy in force for the key, each approval
// valid, no signer twice, not expired, not applied before (the store
// records every applied request). The trust policies live in the branch
// key store (keystore.Records), installed by set-policy changes.
//
// A change file carries the request and its approvals between
// custodians. It is JSON, mode 0600 (a request names a branch key id):
//
//	{"version": 2,
//	 "change": "<the request, described with the key's fingerprint>",
//	 "request": "<base64 of custody.Request.MarshalBinary>",
//	 "approvals": ["<base64 of custody.Approval.MarshalBinary>", ...]}
//
// "change" is for the reader; the request's bytes are what is signed and
// what apply reads.

const changeFileVersion = 2

// maxChangeFileBytes caps a change file: a request with a policy at its
// caps and MaxApprovals approvals, in base64, fit well within it.
const maxChangeFileBytes = 512 << 10

type changeFileJSON struct {
	Version   int      `json:"version"`
	Change    string   `json:"change"`
	Request   string   `json:"request"`
	Approvals []string `json:"approvals"`
}

// changeFile is a request and the approvals collected for it.
type changeFile struct {
	Request   *custody.Request
	Approvals []custody.Approval
}

// readChangeFile reads and decodes a change file; custody's parsers refuse
// anything but canonical encodings.
func readChangeFile(path string) (*changeFile, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the change file: %w", err)
	}
	if len(b) > maxChangeFileBytes {
		return nil, fmt.Errorf("%s is larger than a change file can be", path)
	}
	var j changeFileJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Version != changeFileVersion {
		return nil, fmt.Errorf("%s is not a keyctl change file (version %d)", path, changeFileVersion)
	}
	raw, err := base64.StdEncoding.DecodeString(j.Request)
	if err != nil {
		return nil, fmt.Errorf("%s: the request is not base64", path)
	}
	r, err := custody.ParseRequest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(j.Approvals) > custody.MaxApprovals {
		return nil, fmt.Errorf("%s carries more than %d approvals", path, custody.MaxApprovals)
	}
	f := &changeFile{Request: r}
	for _, s := range j.Approvals {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s: an approval is not base64", path)
		}
		a, err := custody.ParseApproval(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		f.Approvals = append(f.Approvals, a)
	}
	return f, nil
}

// write saves the change file with mode 0600.
func (f *changeFile) write(path string) error {
	raw, err := f.Request.MarshalBinary()
	if err != nil {
		return err
	}
	j := changeFileJSON{Version: changeFileVersion, Change: f.Request.String(), Request: base64.StdEncoding.EncodeToString(raw), Approvals: []string{}}
	for _, a := range f.Approvals {
		b, err := a.MarshalBinary()
		if err != nil {
			return err
		}
		j.Approvals = append(j.Approvals, base64.StdEncoding.EncodeToString(b))
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// id is the request's id in hex.
func (f *changeFile) id() string {
	id, err := f.Request.ID()
	if err != nil {
		return "invalid"
	}
	return id.String()
}

// signers are the names on the approvals, in order.
func (f *changeFile) signers() []string {
	names := []string{}
	for _, a := range f.Approvals {
		names = append(names, a.Signer)
	}
	return names
}

// mergeChangeFiles joins the approvals of several copies of one request
// (each custodian may have signed a copy of their own).
func mergeChangeFiles(paths []string) (*changeFile, error) {
	var merged *changeFile
	for _, p := range paths {
		f, err := readChangeFile(p)
		if err != nil {
			return nil, err
		}
		if merged == nil {
			merged = f
			continue
		}
		if f.id() != merged.id() {
			return nil, usagef("%s holds a different request from %s", p, paths[0])
		}
		for _, a := range f.Approvals {
			if !slices.ContainsFunc(merged.Approvals, func(b custody.Approval) bool {
				return a.Signer == b.Signer && bytes.Equal(a.Signature, b.Signature)
			}) {
				merged.Approvals = append(merged.Approvals, a)
			}
		}
		if len(merged.Approvals) > custody.MaxApprovals {
			return nil, fmt.Errorf("the change files carry more than %d approvals", custody.MaxApprovals)
		}
	}
	return merged, nil
}
