package ingest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// This is a line-protocol entry parser that does not allocate. Its grammar
// is that of InfluxDB's own decoder, github.com/influxdata/line-protocol/v2,
// token for token (which bytes each token may hold, which bytes a
// backslash escapes, how values are typed); the tests compare the two by
// differential fuzzing. That decoder cannot be reset between messages, so
// using it costs an allocation per message, which the hot path cannot
// afford (see bench/).

// byte classes, as in line-protocol/v2
type byteSet [256]bool

func newSet(in string, nonPrintable bool) *byteSet {
	var s byteSet
	for i := range s {
		s[i] = true
	}
	for i := 0; i < len(in); i++ {
		s[in[i]] = false
	}
	if nonPrintable {
		for c := 0; c < 32; c++ {
			s[c] = false
		}
		s[0x7f] = false
	}
	return &s
}

func escSet(in string) *byteSet {
	var s byteSet
	for i := 0; i < len(in); i++ {
		s[in[i]] = true
	}
	return &s
}

var (
	measChars = newSet(", ", true)
	keyChars  = newSet(",= \r\n", true) // tag keys, tag values, field keys
	valChars  = newSet(", \r\n", false) // unquoted field values
	measEsc   = escSet(" ,")
	keyEsc    = escSet(",= ")
	noEsc     = escSet("")
)

func isTimeChar(c byte) bool { return c == '-' || (c >= '0' && c <= '9') }

// lpParser parses one entry into its point builder.
type lpParser struct {
	b    *pointBuilder
	meas []byte // unescaped measurement, reused
}

// lpErr is a failed entry: why, and where scanning stopped (the decoder
// resumes after the next newline from there, as line-protocol/v2 does).
type lpErr struct {
	reason Reason
	err    error
	at     int
	// here: resume exactly at at (line-protocol/v2 does not skip the rest
	// of the line when the error follows an empty timestamp).
	here bool
}

// synErr is a syntax error found at pos (relative to the entry's start
// start) with scanning stopped at at.
func synErr(start, pos, at int, format string, a ...any) lpErr {
	return lpErr{reason: ReasonSyntax, err: fmt.Errorf("at byte %d: "+format, append([]any{pos - start}, a...)...), at: at}
}

// take scans a token of bytes in set from line[i:], where a backslash
// followed by a byte in esc escapes it (any other backslash is literal).
// It returns the end of the token and whether it holds escapes.
func take(line []byte, i int, set, esc *byteSet) (end int, escaped bool) {
	for i < len(line) {
		c := line[i]
		if c == '\\' {
			if i+1 < len(line) && esc[line[i+1]] {
				escaped = true
				i += 2
				continue
			}
			i++
			continue
		}
		if !set[c] {
			break
		}
		i++
	}
	return i, escaped
}

// unescape appends tok to dst without the backslashes of escapes in esc.
func unescape(dst, tok []byte, esc *byteSet) []byte {
	for i := 0; i < len(tok); i++ {
		if tok[i] == '\\' && i+1 < len(tok) && esc[tok[i+1]] {
			i++
		}
		dst = append(dst, tok[i])
	}
	return dst
}

// parse parses the entry starting at buf[start] (after skipEmptyLines)
// and returns the position after it (after its line end) with its
// measurement and timestamp text (nil when there is none).
func (p *lpParser) parse(buf []byte, start int) (end int, meas, ts []byte, e lpErr) {
	b := p.b
	b.reset()
	n := len(buf)
	i := start
	serr := func(pos int, format string, a ...any) lpErr { return synErr(start, pos, i, format, a...) }
	// measurement
	m0 := i
	mEnd, esc := take(buf, i, measChars, measEsc)
	if mEnd == m0 {
		if mEnd >= n {
			return 0, nil, nil, serr(i, "no measurement name found")
		}
		return 0, nil, nil, serr(i, "invalid character %q found at start of measurement name", buf[i])
	}
	i = mEnd
	if buf[m0] == '#' {
		return 0, nil, nil, serr(m0, "invalid character found in comment line")
	}
	meas = buf[m0:mEnd]
	if !utf8.Valid(meas) {
		return 0, nil, nil, serr(m0, "invalid utf-8 sequence in token %q", meas)
	}
	if esc {
		p.meas = unescape(p.meas[:0], meas, measEsc)
		meas = p.meas
	}
	if e := tagComma(buf, &i, start); e.err != nil {
		return 0, nil, nil, e
	}
	// tags
	for {
		if i >= n {
			return 0, nil, nil, serr(i, "expected field key but none found")
		}
		if buf[i] == ' ' {
			for i < n && buf[i] == ' ' {
				i++
			}
			break
		}
		k0 := i
		kEnd, kEsc := take(buf, i, keyChars, keyEsc)
		i = kEnd
		if kEnd == k0 || kEnd >= n || buf[kEnd] != '=' {
			if kEnd >= n {
				return 0, nil, nil, serr(k0, "empty tag name")
			}
			if kEnd > k0 {
				return 0, nil, nil, serr(k0, "expected '=' after tag key %q, but got %q instead", buf[k0:kEnd], buf[kEnd])
			}
			return 0, nil, nil, serr(k0, "expected tag key or field but found %q instead", buf[k0])
		}
		key := buf[k0:kEnd]
		if !utf8.Valid(key) {
			return 0, nil, nil, serr(k0, "invalid utf-8 sequence in token %q", key)
		}
		i = kEnd + 1
		v0 := i
		vEnd, vEsc := take(buf, i, keyChars, keyEsc)
		i = vEnd
		val := buf[v0:vEnd]
		if len(val) == 0 {
			return 0, nil, nil, serr(v0, "expected tag value after tag key %q, but none found", key)
		}
		if !utf8.Valid(val) {
			return 0, nil, nil, serr(v0, "invalid utf-8 sequence in token %q", val)
		}
		b.addTagEsc(key, kEsc, val, vEsc)
		if i >= n {
			return 0, nil, nil, serr(i, "expected field key but none found")
		}
		if e := tagComma(buf, &i, start); e.err != nil {
			return 0, nil, nil, e
		}
	}
	// fields
	for {
		k0 := i
		kEnd, kEsc := take(buf, i, keyChars, keyEsc)
		i = kEnd
		if kEnd == k0 {
			if kEnd >= n {
				return 0, nil, nil, serr(k0, "expected field key but none found")
			}
			return 0, nil, nil, serr(k0, "invalid character %q found at start of field key", buf[k0])
		}
		key := buf[k0:kEnd]
		if !utf8.Valid(key) {
			return 0, nil, nil, serr(k0, "invalid utf-8 sequence in token %q", key)
		}
		if i >= n {
			return 0, nil, nil, serr(i, "want '=' after field key %q, found end of input", key)
		}
		if buf[i] != '=' {
			return 0, nil, nil, serr(i, "want '=' after field key %q, found %q", key, buf[i])
		}
		i++
		if i >= n {
			return 0, nil, nil, serr(i, "expected field value, found end of input")
		}
		v0 := i
		switch c := buf[i]; {
		case c == '"':
			i++
			for i < n && buf[i] != '"' {
				if buf[i] == '\\' && i+1 < n {
					i++
				}
				i++
			}
			if i >= n {
				i = n
				return 0, nil, nil, serr(v0, "expected closing quote for string field value, found end of input")
			}
			if !utf8.Valid(buf[v0+1 : i]) {
				return 0, nil, nil, serr(v0, "invalid utf-8 found in value %q", buf[v0+1:i])
			}
			i++ // a string: nothing numeric to learn from
			b.nFields++
		case c == 't' || c == 'T' || c == 'f' || c == 'F':
			i, _ = take(buf, i, valChars, noEsc)
			switch string(buf[v0:i]) {
			case "t", "T", "true", "True", "TRUE":
				b.addFieldEsc(key, kEsc, 1)
			case "f", "F", "false", "False", "FALSE":
				b.addFieldEsc(key, kEsc, 0)
			default:
				return 0, nil, nil, serr(v0, "invalid bool value %q", buf[v0:i])
			}
		case c == '-' || c == '.' || (c >= '0' && c <= '9'):
			i, _ = take(buf, i, valChars, noEsc)
			v, e := parseLPNumber(buf[v0:i], v0-start, i)
			if e.err != nil {
				return 0, nil, nil, e
			}
			b.addFieldEsc(key, kEsc, v)
		default:
			if tEnd, _ := take(buf, i, valChars, noEsc); isNonFinite(buf[v0:tEnd]) {
				return 0, nil, nil, nonFiniteErr(v0-start, i, key, buf[v0:tEnd])
			}
			return 0, nil, nil, serr(i, "field value has unrecognized type")
		}
		if i >= n {
			return n, meas, nil, lpErr{}
		}
		if buf[i] == ',' {
			i++
			continue
		}
		if c := buf[i]; c != ' ' && c != '\r' && c != '\n' {
			return 0, nil, nil, serr(i, "unexpected character %q after field", c)
		}
		break
	}
	for i < n && buf[i] == ' ' {
		i++
	}
	if e, ok := takeEOL(buf, i); ok {
		return e, meas, nil, lpErr{}
	}
	// timestamp
	t0 := i
	for i < n && isTimeChar(buf[i]) {
		i++
	}
	if i > t0 {
		ts = buf[t0:i]
	}
	if i >= n {
		return n, meas, ts, lpErr{}
	}
	if c := buf[i]; c != ' ' && c != '\r' && c != '\n' {
		for i < n && buf[i] != '\r' && buf[i] != '\n' {
			i++
		}
		e := serr(t0, "invalid timestamp (%q)", buf[t0:i])
		e.here = ts == nil
		return 0, nil, nil, e
	}
	for i < n && buf[i] == ' ' {
		i++
	}
	if e, ok := takeEOL(buf, i); ok {
		return e, meas, ts, lpErr{}
	}
	x := i
	for i < n && buf[i] != '\r' && buf[i] != '\n' {
		i++
	}
	e = serr(x, "unexpected text after timestamp (%q)", buf[x:i])
	e.here = ts == nil
	return 0, nil, nil, e
}

// takeEOL reports whether buf[i:] starts with a line end (or is empty) and
// returns the position after it.
func takeEOL(buf []byte, i int) (int, bool) {
	switch {
	case i >= len(buf):
		return len(buf), true
	case buf[i] == '\n':
		return i + 1, true
	case buf[i] == '\r' && i+1 >= len(buf):
		return i + 1, true
	case buf[i] == '\r' && buf[i+1] == '\n':
		return i + 2, true
	}
	return i, false
}

// skipEmptyLines skips spaces, empty lines and comment lines from i, as
// line-protocol/v2 does (a comment with invalid characters, or a lone
// carriage return, is left for the parser to report).
func skipEmptyLines(buf []byte, i int) int {
	for {
		line := i
		for i < len(buf) && buf[i] == ' ' {
			i++
		}
		if i >= len(buf) {
			return i
		}
		switch buf[i] {
		case '#':
			for i < len(buf) && buf[i] >= 32 && buf[i] != 0x7f {
				i++
			}
			e, ok := takeEOL(buf, i)
			if !ok {
				return line
			}
			i = e
		case '\n':
			i++
		case '\r':
			e, ok := takeEOL(buf, i)
			if !ok {
				return i
			}
			i = e
		default:
			return i
		}
	}
}

// recoverLine is where decoding resumes after an error that stopped at
// at: after the next newline.
func recoverLine(buf []byte, at int) int {
	for at < len(buf) && buf[at] != '\n' {
		at++
	}
	if at < len(buf) {
		at++
	}
	return at
}

// tagComma consumes a ',' after a measurement or tag value; it must be
// followed by a tag key.
func tagComma(buf []byte, i *int, start int) lpErr {
	if *i >= len(buf) || buf[*i] != ',' {
		return lpErr{}
	}
	*i++
	if *i >= len(buf) {
		return synErr(start, *i, *i, "expected tag key after comma; got end of input")
	}
	if c := buf[*i]; c == ' ' || c == '\r' || c == '\n' {
		return synErr(start, *i, *i, "expected tag key after comma; got white space instead")
	}
	return lpErr{}
}

// parseLPNumber parses an unquoted numeric field value (12, 1.5e3, 12i,
// 12u) as line-protocol/v2 does, as a float64.
func parseLPNumber(v []byte, pos, at int) (float64, lpErr) {
	switch v[len(v)-1] {
	case 'i':
		x, err := strconv.ParseInt(string(v[:len(v)-1]), 10, 64)
		if err != nil {
			return 0, numErr(err, pos, at, "invalid integer value syntax", v)
		}
		return float64(x), lpErr{}
	case 'u':
		x, err := strconv.ParseUint(string(v[:len(v)-1]), 10, 64)
		if err != nil {
			return 0, numErr(err, pos, at, "invalid unsigned integer value syntax", v)
		}
		return float64(x), lpErr{}
	}
	x, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, numErr(err, pos, at, "invalid float value syntax", v)
	}
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, nonFiniteErr(pos, at, nil, v)
	}
	return x, lpErr{}
}

// isNonFinite reports whether an unquoted field value spells NaN or an
// infinity (as strconv.ParseFloat reads them: nan, inf, +inf, -Infinity...):
// line protocol has neither, so such a value is ReasonNonFinite rather than
// a syntax error.
func isNonFinite(v []byte) bool {
	if len(v) < 3 || len(v) > 9 {
		return false
	}
	x, err := strconv.ParseFloat(string(v), 64)
	return err == nil && (math.IsNaN(x) || math.IsInf(x, 0))
}

func nonFiniteErr(pos, at int, key, v []byte) lpErr {
	if key == nil {
		return lpErr{reason: ReasonNonFinite, err: fmt.Errorf("at byte %d: %q is not a finite number; line protocol has no NaN or infinity", pos, v), at: at}
	}
	return lpErr{reason: ReasonNonFinite, err: fmt.Errorf("at byte %d: field %q = %q is not a finite number; line protocol has no NaN or infinity", pos, key, v), at: at}
}

var errOutOfRange = errors.New("value out of range")

func numErr(err error, pos, at int, what string, v []byte) lpErr {
	if errors.Is(err, strconv.ErrRange) {
		return lpErr{reason: ReasonOutOfRange, err: fmt.Errorf("at byte %d: %w (%q)", pos, errOutOfRange, v), at: at}
	}
	return synErr(0, pos, at, "%s (%q)", what, v)
}
