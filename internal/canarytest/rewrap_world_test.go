package canarytest

import (
	"github.com/phicrypt/phicrypt/phicrypt"
)

// signedRewrap returns the rewrap of a signed message of canaryPlain under
// canaryContext, its body written and its footer not yet made: it holds
// the new header and the new signing key.
func (w *world) signedRewrap() *phicrypt.SignedRewrap {
	enc, err := phicrypt.New(phicrypt.Config{Keyring: w.raw, Suite: phicrypt.SuiteCommittedSigned, FrameLength: 64})
	w.must(err)
	msg, err := enc.Encrypt(w.ctx, []byte(canaryPlain), canaryContext())
	w.must(err)
	hl, err := enc.HeaderLength(msg)
	w.must(err)
	sr, err := enc.RewrapSigned(w.ctx, msg, canaryContext(), w.raw)
	w.must(err)
	_, err = sr.Write(msg[hl : hl+4+4+12+4+len(canaryPlain)+16])
	w.must(err)
	return sr
}
