package shamir

// Arithmetic in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1
// (FIPS 197, section 4). Addition is XOR. Multiplication and inversion use
// no tables and no branches on their operands, so their timing does not
// depend on the secret bytes they work on.

// mul returns a·b: shift-and-add over the bits of b, reducing a by the
// polynomial whenever its top bit shifts out. Every step is masked, never
// branched.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)     // add a when b's low bit is set
		carry := -(a >> 7)    // 0xff when a's top bit is set
		a = a<<1 ^ 0x1b&carry // multiply a by x, reduce
		b >>= 1
	}
	return p
}

// inv returns a⁻¹ as a^254 (a^255 = 1 for every non-zero a), by a fixed
// chain of squarings and multiplications; inv(0) is 0.
func inv(a byte) byte {
	r := byte(1)
	sq := a
	for range 7 { // r = a^2 · a^4 · … · a^128 = a^254
		sq = mul(sq, sq)
		r = mul(r, sq)
	}
	return r
}
