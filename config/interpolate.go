package config

import (
	"errors"
	"fmt"
	"strings"
)

// Interpolate replaces environment variables in TOML text before it is
// decoded, as Telegraf and Benthos do:
//
//	${VAR}            the value of VAR; an error if VAR is not set
//	${VAR:-default}   the value of VAR, or default if VAR is unset or empty
//	$$                a literal $ (so $${VAR} is the text ${VAR})
//
// A $ followed by anything else is kept as it is. Comments are left alone.
// Inside a quoted string the value becomes the string's content: quotes,
// backslashes and control characters are escaped in a "..." string, and a
// value a '...' string cannot hold (a ' or a line break) is an error.
// Outside quotes the value is TOML text as it stands, so
// `length = ${LEN:-64}` is a number and `brokers = ${BROKERS}` may be an
// array. Substituted text is not interpolated again.
//
// lookup is os.LookupEnv in a process; name (the file's name) prefixes the
// errors, each of which gives the line and the variable.
func Interpolate(b []byte, name string, lookup func(string) (string, bool)) ([]byte, error) {
	var (
		out  strings.Builder
		errs []error
		ctx  = bare
		line = 1
		s    = string(b)
	)
	out.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			if ctx == comment || ctx == basic || ctx == literal {
				ctx = bare // a single-line string cannot span lines: TOML reports it
			}
		case ctx == comment:
		case c == '$':
			n, text, err := expand(s[i:], lookup)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", name, line, err))
				out.WriteString(s[i : i+n])
				i += n
				continue
			}
			if text.isVar {
				text.value, err = quoteFor(ctx, text)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s:%d: %w", name, line, err))
				}
			}
			out.WriteString(text.value)
			i += n
			continue
		case ctx == bare && c == '#':
			ctx = comment
		case ctx == bare && strings.HasPrefix(s[i:], `"""`):
			ctx = mlBasic
			out.WriteString(`"""`)
			i += 3
			continue
		case ctx == bare && strings.HasPrefix(s[i:], "'''"):
			ctx = mlLiteral
			out.WriteString("'''")
			i += 3
			continue
		case ctx == bare && c == '"':
			ctx = basic
		case ctx == bare && c == '\'':
			ctx = literal
		case (ctx == basic || ctx == mlBasic) && c == '\\' && i+1 < len(s):
			// An escape: copy it whole, so that \" does not end the string.
			if s[i+1] == '\n' {
				line++
			}
			out.WriteString(s[i : i+2])
			i += 2
			continue
		case ctx == basic && c == '"', ctx == literal && c == '\'':
			ctx = bare
		case ctx == mlBasic && strings.HasPrefix(s[i:], `"""`), ctx == mlLiteral && strings.HasPrefix(s[i:], "'''"):
			ctx = bare
			out.WriteString(s[i : i+3])
			i += 3
			continue
		}
		out.WriteByte(c)
		i++
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return []byte(out.String()), nil
}

// tomlContext is where in TOML text a byte is.
type tomlContext int

const (
	bare      tomlContext = iota // keys, values, punctuation
	basic                        // "..."
	literal                      // '...'
	mlBasic                      // """..."""
	mlLiteral                    // '''...'''
	comment                      // # to the end of the line
)

// expansion is what one $ sequence stands for.
type expansion struct {
	value string
	// isVar: value came from a variable or a default (and is quoted for
	// its context); otherwise it is literal text ($$ or a lone $).
	isVar bool
	name  string
}

// expand reads the $ sequence at the start of s and returns its length and
// what it stands for.
func expand(s string, lookup func(string) (string, bool)) (int, expansion, error) {
	if strings.HasPrefix(s, "$$") {
		return 2, expansion{value: "$"}, nil
	}
	if !strings.HasPrefix(s, "${") {
		return 1, expansion{value: "$"}, nil
	}
	end := strings.IndexAny(s, "}\n")
	if end < 0 || s[end] != '}' {
		n := len(s)
		if end >= 0 {
			n = end
		}
		return n, expansion{}, fmt.Errorf("%s: no closing } on the line (write $$ for a literal $)", s[:min(n, 40)])
	}
	body := s[2:end]
	varName, def, hasDef := strings.Cut(body, ":-")
	if !validVarName(varName) {
		return end + 1, expansion{}, fmt.Errorf("${%s}: %q is not a variable name (letters, digits and _, not starting with a digit; write $$ for a literal $)", body, varName)
	}
	v, ok := lookup(varName)
	switch {
	case hasDef && (!ok || v == ""):
		v = def
	case !ok:
		return end + 1, expansion{}, fmt.Errorf("${%s} is not set: set the environment variable %s, or give a default: ${%s:-value}", varName, varName, varName)
	}
	return end + 1, expansion{value: v, isVar: true, name: varName}, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// quoteFor makes a variable's value the content of the string it stands
// in (ctx), or leaves it as TOML text outside strings.
func quoteFor(ctx tomlContext, e expansion) (string, error) {
	switch ctx {
	case basic, mlBasic:
		var b strings.Builder
		for _, r := range e.value {
			switch {
			case r == '\\':
				b.WriteString(`\\`)
			case r == '"':
				b.WriteString(`\"`)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\r':
				b.WriteString(`\r`)
			case r == '\t':
				b.WriteString(`\t`)
			case r < 0x20 || r == 0x7f:
				fmt.Fprintf(&b, `\u%04X`, r)
			default:
				b.WriteRune(r)
			}
		}
		return b.String(), nil
	case literal, mlLiteral:
		bad := strings.ContainsAny(e.value, "\r\n")
		if ctx == literal {
			bad = bad || strings.Contains(e.value, "'")
		} else {
			bad = strings.Contains(e.value, "'''")
		}
		if bad {
			return e.value, fmt.Errorf("the value of ${%s} holds a quote or a line break, which a '...' string cannot: use a \"...\" string", e.name)
		}
	}
	return e.value, nil
}
