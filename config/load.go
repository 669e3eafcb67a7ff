package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// EnvFile is the environment variable that names the configuration file
// when no --config flag is given.
const EnvFile = "TSREP_CONFIG"

//go:generate cp ../config.toml defaults.toml

// defaultsTOML is the repository's config.toml, copied by go generate (a
// test checks that the copy is byte-identical).
//
//go:embed defaults.toml
var defaultsTOML []byte

// DefaultFile is the shipped config.toml: every key with its default and a
// comment. `tsrep config` prints it.
func DefaultFile() []byte { return bytes.Clone(defaultsTOML) }

// Loader reads a configuration: the file, with ${VAR} interpolated (see
// Interpolate), decoded on top of Default; then Sets, in order; then
// Override; then Validate.
type Loader struct {
	// LookupEnv resolves ${VAR}; nil is os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Sets are "section.key=value" overrides (tsrep's --set). The value is
	// read as a TOML value (a number, a boolean, an array, a quoted
	// string) and, if it is not one or does not fit the key, as a string;
	// a key that takes a list of strings also takes "a,b,c". Unknown keys
	// are errors, as in the file.
	Sets []string
	// Override, if set, changes the configuration after Sets and before
	// Validate (a command's own flags, such as --brokers).
	Override func(*Config)
}

// Load reads the file at path and then does what Parse does.
func (l Loader) Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return l.Parse(b, path)
}

// Parse interpolates and decodes TOML text on top of Default, applies the
// overrides and validates the result. name is the file's name in error
// messages. Unknown keys are an error, so a typo does not silently fall
// back to a default.
func (l Loader) Parse(b []byte, name string) (Config, error) {
	lookup := l.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	b, err := Interpolate(b, name, lookup)
	if err != nil {
		return Config{}, err
	}
	c := Default()
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&c)
	if err != nil {
		return Config{}, fmt.Errorf("parse %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("%s: unknown keys %s (`tsrep config` prints every key)", name, strings.Join(keys, ", "))
	}
	for _, s := range l.Sets {
		if err := applySet(&c, s); err != nil {
			return Config{}, err
		}
	}
	if l.Override != nil {
		l.Override(&c)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// applySet applies one "section.key=value" override to c.
func applySet(c *Config, set string) error {
	key, raw, ok := strings.Cut(set, "=")
	key = strings.TrimSpace(key)
	parts := strings.Split(key, ".")
	if !ok || len(parts) < 2 || !bareKeys(parts) {
		return fmt.Errorf("--set %s: want section.key=value, e.g. --set kafka.group=tsrep-2", set)
	}
	// Candidate TOML documents, in order of preference: the value as TOML,
	// as a string, as a comma-separated list of strings. Each is tried on
	// a scratch configuration first, so a failed try changes nothing.
	var docs []string
	if !strings.ContainsAny(raw, "\r\n") && isTOMLValue(raw) {
		docs = append(docs, key+" = "+raw)
	}
	docs = append(docs, key+" = "+strconv.Quote(raw))
	if raw != "" {
		items := strings.Split(raw, ",")
		q := make([]string, len(items))
		for i, it := range items {
			q[i] = strconv.Quote(strings.TrimSpace(it))
		}
		docs = append(docs, key+" = ["+strings.Join(q, ", ")+"]")
	}
	var first error
	for _, doc := range docs {
		scratch := Default()
		md, err := toml.Decode(doc, &scratch)
		if err == nil {
			if und := md.Undecoded(); len(und) > 0 {
				return fmt.Errorf("--set %s: unknown key %s (`tsrep config` prints every key)", set, und[0])
			}
			if _, err := toml.Decode(doc, c); err != nil {
				return fmt.Errorf("--set %s: %w", set, err)
			}
			return nil
		}
		if first == nil {
			first = err
		}
	}
	// "toml: line 1 (last key "window.length"): incompatible types: ..."
	// speaks of the document made here: keep the reason.
	msg := first.Error()
	if i := strings.Index(msg, "): "); strings.HasPrefix(msg, "toml: ") && i > 0 {
		msg = msg[i+3:]
	}
	return fmt.Errorf("--set %s: %s", set, msg)
}

// isTOMLValue reports whether raw is one TOML value.
func isTOMLValue(raw string) bool {
	var v map[string]any
	_, err := toml.Decode("v = "+raw, &v)
	return err == nil && len(v) == 1
}

// bareKeys reports whether every part is a TOML bare key.
func bareKeys(parts []string) bool {
	for _, p := range parts {
		if p == "" {
			return false
		}
		for _, r := range p {
			if !(r == '_' || r == '-' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}
