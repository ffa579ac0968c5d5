package siv

// s2v is S2V of RFC 5297, section 2.4, over the vector ads..., plaintext.
// D starts from CMAC(<zero>), which depends on the key only and is computed
// once in New. x is the 16-byte scratch block; on return it holds the
// result's bytes.
func (s *SIV) s2v(x []byte, ads [][]byte, plaintext []byte) word128 {
	d := s.zeroMAC
	for _, ad := range ads {
		d = d.dbl().xor(s.mac.sum(x, ad))
	}
	if len(plaintext) >= 16 {
		return s.mac.sumXorend(x, plaintext, d)
	}
	// T = dbl(D) xor pad(Sn) is one complete block: CMAC masks it with K1.
	return s.mac.encrypt(x, d.dbl().xor(pad(plaintext)).xor(s.mac.k1))
}
