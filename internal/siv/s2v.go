package siv

// s2vAD is the first part of S2V (RFC 5297, section 2.4): the D that the
// associated-data strings ads leave, before the plaintext. D starts from
// CMAC(<zero>), which depends on the key only and is computed once in New;
// for a fixed associated data, Bind computes the whole of it once. x is the
// 16-byte scratch block.
func (s *SIV) s2vAD(x []byte, ads [][]byte) word128 {
	d := s.zeroMAC
	for _, ad := range ads {
		d = d.dbl().xor(s.mac.sum(x, ad))
	}
	return d
}

// s2vFinal is the rest of S2V: the plaintext's turn after D. x is the
// 16-byte scratch block; on return it holds the result's bytes.
func (s *SIV) s2vFinal(x []byte, d word128, plaintext []byte) word128 {
	if len(plaintext) >= 16 {
		return s.mac.sumXorend(x, plaintext, d)
	}
	// T = dbl(D) xor pad(Sn) is one complete block: CMAC masks it with K1.
	return s.mac.sumBlock(x, d.dbl().xor(pad(plaintext)))
}
