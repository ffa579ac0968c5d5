package phicrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"sync"

	"github.com/phicrypt/phicrypt/internal/kdf"
)

// kdfPools hands out reusable HMAC states per suite hash, so deriving a
// message's keys allocates nothing (crypto/hkdf builds new hash states on
// every call; internal/kdf is proven equal to it).
type kdfPools struct {
	pools map[Suite]*sync.Pool
}

func newKDFPools() *kdfPools {
	kp := &kdfPools{pools: map[Suite]*sync.Pool{}}
	for _, si := range []*suiteInfo{&suiteCommitted, &suiteCommittedSigned, &suiteLegacy, &suiteLegacySigned} {
		newHash := si.kdfHash
		kp.pools[si.id] = &sync.Pool{New: func() any { return newKDFState(kdf.NewHMAC(newHash)) }}
	}
	return kp
}

type kdfState struct {
	h              *kdf.HMAC
	prk, key, info []byte
}

func newKDFState(h *kdf.HMAC) *kdfState {
	return &kdfState{h: h, prk: make([]byte, 0, 64), key: make([]byte, 0, 64), info: make([]byte, 0, 64)}
}

var (
	labelDeriveKey = []byte("DERIVEKEY")
	labelCommitKey = []byte("COMMITKEY")
)

// derive computes a message's encryption key and, for committing suites, its
// commitment key (client-apis/key-derivation.md):
//
//	committing: PRK = HKDF-Extract(SHA-512, salt = message id, data key)
//	            key    = HKDF-Expand(PRK, suite id || "DERIVEKEY", 32)
//	            commit = HKDF-Expand(PRK, "COMMITKEY", 32)
//	legacy:     key = HKDF(hash, salt = none, data key, suite id || message id, 32)
//
// It returns the AES-GCM instance and appends the commitment key to commit.
func (kp *kdfPools) derive(si *suiteInfo, dataKey, messageID, commit []byte) (cipher.AEAD, []byte) {
	pool := kp.pools[si.id]
	st := pool.Get().(*kdfState)
	defer func() {
		// The PRK and the HMAC states keyed with it give the message key.
		st.h.Wipe()
		clear(st.prk[:cap(st.prk)])
		pool.Put(st)
	}()
	st.info = binary.BigEndian.AppendUint16(st.info[:0], uint16(si.id))
	if si.committing {
		prk := st.h.Extract(st.prk[:0], messageID, dataKey)
		key := st.h.Expand(st.key[:0], prk, dataKeyLength, st.info, labelDeriveKey)
		commit = st.h.ExpandAgain(commit, commitKeyLen, labelCommitKey)
		return newAEAD(key), commit
	}
	st.info = append(st.info, messageID...)
	prk := st.h.Extract(st.prk[:0], nil, dataKey)
	key := st.h.Expand(st.key[:0], prk, dataKeyLength, st.info)
	return newAEAD(key), commit
}

func newAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	clear(key)
	if err != nil {
		panic("phicrypt: derived key is not an AES-256 key")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("phicrypt: " + err.Error())
	}
	return aead
}

// checkCommitment compares the derived commitment key with the header's in
// constant time.
func checkCommitment(derived, stored []byte) bool {
	return subtle.ConstantTimeCompare(derived, stored) == 1
}
