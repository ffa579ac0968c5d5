package fieldenc

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/phicrypt/phicrypt/internal/blind"
)

// tagSpec is one parsed `phi:"..."` tag.
//
//	phi:"-"                                        not PHI, not visited
//	phi:"rowid"                                    the row identity bound into randomized fields
//	phi:"encrypt"                                  randomized (AES-256-GCM)
//	phi:"encrypt,deterministic"                    AES-SIV, searchable for equality
//	phi:"encrypt,blindindex=ssn_bidx:24,normalize=digits"
//	phi:"encrypt,column=dob"                       the column name bound into the key (default: the Go field path)
//	phi:"index=ssn_bidx"                           receives blind index ssn_bidx
type tagSpec struct {
	skip, rowID, encrypt, deterministic bool
	column                              string
	indexes                             []indexRef
	normalize                           blind.Normalizer
	normalizeSpec                       string
	target                              string
}

type indexRef struct {
	name string
	bits int
}

// parseTag parses a phi tag; errors say what is wrong with it, never
// anything about values.
func parseTag(tag string) (tagSpec, error) {
	var s tagSpec
	if tag == "-" {
		s.skip = true
		return s, nil
	}
	for i, opt := range strings.Split(tag, ",") {
		name, arg, hasArg := strings.Cut(opt, "=")
		if i > 0 && !s.encrypt {
			return s, fmt.Errorf("option %q needs encrypt first", opt)
		}
		switch {
		case i == 0 && opt == "rowid":
			s.rowID = true
		case i == 0 && opt == "encrypt":
			s.encrypt = true
		case i == 0 && name == "index" && hasArg:
			if err := checkName("blind index", arg); err != nil {
				return s, err
			}
			s.target = arg
		case i > 0 && opt == "deterministic":
			s.deterministic = true
		case i > 0 && name == "column" && hasArg:
			if err := checkName("column", arg); err != nil {
				return s, err
			}
			s.column = arg
		case i > 0 && name == "blindindex" && hasArg:
			ref, err := parseIndexRef(arg)
			if err != nil {
				return s, err
			}
			s.indexes = append(s.indexes, ref)
		case i > 0 && name == "normalize" && hasArg:
			n, err := blind.ParseNormalizer(arg)
			if err != nil {
				return s, err
			}
			s.normalize, s.normalizeSpec = n, arg
		default:
			return s, fmt.Errorf("unknown option %q (want rowid, encrypt, index=NAME, deterministic, column=NAME, blindindex=NAME:BITS or normalize=N)", opt)
		}
		if (s.rowID || s.target != "") && i > 0 {
			return s, fmt.Errorf("%q takes no options", strings.Split(tag, ",")[0])
		}
	}
	if s.normalize != nil && len(s.indexes) == 0 {
		return s, fmt.Errorf("normalize applies to blind indexes; add blindindex=NAME:BITS")
	}
	return s, nil
}

func parseIndexRef(arg string) (indexRef, error) {
	name, bitsText, ok := strings.Cut(arg, ":")
	if !ok {
		return indexRef{}, fmt.Errorf("blindindex=%s: want NAME:BITS, for example ssn_bidx:24", arg)
	}
	if err := checkName("blind index", name); err != nil {
		return indexRef{}, err
	}
	bits, err := strconv.Atoi(bitsText)
	if err != nil || bits < 1 || bits > 256 {
		return indexRef{}, fmt.Errorf("blindindex=%s: BITS is 1 to 256", arg)
	}
	return indexRef{name: name, bits: bits}, nil
}
