package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// env is a fixed environment for Loader.LookupEnv.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestInterpolate(t *testing.T) {
	lookup := env(
		"BROKERS", `["a:9092", "b:9092"]`,
		"ONE", "k1:9092",
		"GROUP", `tricky "quoted" \ group`,
		"EMPTY", "",
		"LEN", "96",
		"APOS", "it's",
	)
	f := func(in, want string) {
		t.Helper()
		got, err := Interpolate([]byte(in), "test.toml", lookup)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			return
		}
		if string(got) != want {
			t.Errorf("%q:\ngot  %q\nwant %q", in, got, want)
		}
	}
	f(`brokers = ${BROKERS}`, `brokers = ["a:9092", "b:9092"]`)
	f(`brokers = ["${ONE}"]`, `brokers = ["k1:9092"]`)
	f(`group = "${GROUP}"`, `group = "tricky \"quoted\" \\ group"`)
	f(`length = ${LEN:-64}`, `length = 96`)
	f(`length = ${UNSET:-64}`, `length = 64`)
	f(`group = "${EMPTY:-fallback}"`, `group = "fallback"`)
	f(`group = "${EMPTY}"`, `group = ""`)
	f(`group = "pre-${ONE}-post"`, `group = "pre-k1:9092-post"`)
	f(`prefix = "$$x$${ONE}$"`, `prefix = "$x${ONE}$"`)
	f(`prefix = "a$b"`, `prefix = "a$b"`)
	f("# a comment names ${UNSET} and $$\ngroup = \"${ONE}\" # and ${UNSET}", "# a comment names ${UNSET} and $$\ngroup = \"k1:9092\" # and ${UNSET}")
	f(`group = "# not a comment ${ONE}"`, `group = "# not a comment k1:9092"`)
	f(`group = "\"${ONE}"`, `group = "\"k1:9092"`)
	f(`group = '${ONE}'`, `group = 'k1:9092'`)
	f("group = '''\n${APOS}'''", "group = '''\nit's'''")
	f("group = \"\"\"\n${GROUP}\"\"\"", "group = \"\"\"\ntricky \\\"quoted\\\" \\\\ group\"\"\"")

	bad := func(in string, want ...string) {
		t.Helper()
		_, err := Interpolate([]byte(in), "test.toml", lookup)
		if err == nil {
			t.Errorf("%q: no error", in)
			return
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not say %q", in, err, w)
			}
		}
	}
	bad("[kafka]\n\nbrokers = [\"${TSREP_BROKERS}\"]", "test.toml:3:", "TSREP_BROKERS", "${TSREP_BROKERS:-")
	bad("a = \"${NOPE1}\"\nb = ${NOPE2}", "test.toml:1:", "NOPE1", "test.toml:2:", "NOPE2")
	bad(`a = "${ONE"`, "test.toml:1:", "no closing }")
	bad(`a = "${1X}"`, "not a variable name")
	bad(`a = "${}"`, "not a variable name")
	bad(`a = '${APOS}'`, "APOS", `"..."`)
}

func TestSets(t *testing.T) {
	f := func(sets []string, check func(c Config) bool) {
		t.Helper()
		c, err := Loader{Sets: sets}.Parse(nil, "defaults")
		if err != nil {
			t.Errorf("%q: %v", sets, err)
			return
		}
		if !check(c) {
			t.Errorf("%q: not applied: %+v", sets, c)
		}
	}
	f([]string{"kafka.group=x"}, func(c Config) bool { return c.Kafka.Group == "x" })
	f([]string{"window.length=96"}, func(c Config) bool { return c.Window.Length == 96 })
	f([]string{`kafka.brokers=["a:9092","b:9092"]`}, func(c Config) bool {
		return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:9092", "b:9092"})
	})
	f([]string{"kafka.brokers=a:9092, b:9092"}, func(c Config) bool {
		return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:9092", "b:9092"})
	})
	f([]string{"kafka.topics=metrics2"}, func(c Config) bool { return reflect.DeepEqual(c.Kafka.Topics, []string{"metrics2"}) })
	f([]string{"kafka.group=1"}, func(c Config) bool { return c.Kafka.Group == "1" })
	f([]string{"kafka.group=true"}, func(c Config) bool { return c.Kafka.Group == "true" })
	f([]string{`kafka.group="quoted"`}, func(c Config) bool { return c.Kafka.Group == "quoted" })
	f([]string{"kafka.group=a=b"}, func(c Config) bool { return c.Kafka.Group == "a=b" })
	f([]string{"influx.timeout=5s"}, func(c Config) bool { return c.Influx.Timeout.Duration == 5*time.Second })
	f([]string{"kafka.max_future=0"}, func(c Config) bool { return c.Kafka.MaxFuture.Duration == 0 })
	f([]string{"kafka.tls.enabled=true"}, func(c Config) bool { return c.Kafka.TLS.Enabled })
	f([]string{"kafka.dead_letter_topic="}, func(c Config) bool { return c.Kafka.DeadLetterTopic == "" })
	f([]string{"window.interval=10s"}, func(c Config) bool { return c.Window.Interval.Duration == 10*time.Second })
	f([]string{"model.learning_rate=0.01"}, func(c Config) bool { return c.Model.LearningRate == 0.01 })
	f([]string{"kafka.group=a", "kafka.group=b"}, func(c Config) bool { return c.Kafka.Group == "b" })
	// A set replaces a list the file gave, and leaves the rest of the file.
	c, err := Loader{Sets: []string{"kafka.brokers=c:9092"}}.Parse([]byte("[kafka]\nbrokers = [\"a:1\", \"b:2\"]\ngroup = \"g\""), "f.toml")
	if err != nil || !reflect.DeepEqual(c.Kafka.Brokers, []string{"c:9092"}) || c.Kafka.Group != "g" {
		t.Errorf("set over file: %v %+v", err, c.Kafka)
	}

	bad := func(set string, want ...string) {
		t.Helper()
		_, err := Loader{Sets: []string{set}}.Parse(nil, "defaults")
		if err == nil {
			t.Errorf("--set %s: no error", set)
			return
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("--set %s: error %q does not say %q", set, err, w)
			}
		}
	}
	bad("kafka.grup=x", "--set kafka.grup=x", "unknown key kafka.grup")
	bad("kafak.group=x", "unknown key kafak")
	bad("window.length=abc", "--set window.length=abc: incompatible types: TOML value has type string; destination has type integer")
	bad("kafka.group", "want section.key=value")
	bad("group=x", "want section.key=value")
	bad("kafka..group=x", "want section.key=value")
	bad("window.stride=1000", "window.stride")
	bad("kafka.tls=1", "--set kafka.tls=1")
}

// TestBrokersFromEnvAndSet is issue #15's case: a file with
// ${TSREP_BROKERS} and a --set kafka.group=x, through Load and the process
// environment.
func TestBrokersFromEnvAndSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tsrep.toml")
	file := "[kafka]\nbrokers = ${TSREP_BROKERS}\ngroup = \"from-file\"\n\n[influx]\nurl = \"${TSREP_TEST_INFLUX_URL:-http://127.0.0.1:8086}\"\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TSREP_BROKERS", `["k1:9092", "k2:9092"]`)
	c, err := Loader{Sets: []string{"kafka.group=x"}}.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Kafka.Brokers, []string{"k1:9092", "k2:9092"}) || c.Kafka.Group != "x" || c.Influx.URL != "http://127.0.0.1:8086" {
		t.Fatalf("kafka %+v influx %+v", c.Kafka, c.Influx)
	}
	os.Unsetenv("TSREP_BROKERS") // t.Setenv restores it after the test
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "tsrep.toml:2:") || !strings.Contains(err.Error(), "TSREP_BROKERS") {
		t.Fatalf("unset variable: %v", err)
	}
}

// TestDefaultFile: what `tsrep config` prints is the repository's
// config.toml, byte for byte.
func TestDefaultFile(t *testing.T) {
	want, err := os.ReadFile("../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(DefaultFile(), want) {
		t.Fatal("config/defaults.toml differs from config.toml: run `go generate ./config` (it copies config.toml)")
	}
	c, err := Parse(DefaultFile(), "defaults.toml")
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, def) {
		t.Fatal("the shipped config.toml does not decode to Default()")
	}
}

// FuzzInterpolate: Interpolate never panics, leaves text without a $ as it
// is, and a value it puts in a "..." string stays that string's content.
func FuzzInterpolate(f *testing.F) {
	f.Add([]byte("a = \"${X:-1}\" # ${Y}\nb = '${X}'\n"))
	f.Add(DefaultFile())
	f.Add([]byte("a = \"\"\"\n${X}\\\"\"\"\"\nb = $$ ${"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Interpolate(b, "fuzz", env("X", "x\"y\\z\n", "Y", "1"))
		if err == nil && !bytes.ContainsRune(b, '$') && !bytes.Equal(out, b) {
			t.Fatalf("%q became %q", b, out)
		}
		if !bytes.ContainsAny(b, "$\"'#\\\n") {
			doc := append([]byte(`k = "`), b...)
			doc = append(doc, `${X}"`...)
			out, err := Interpolate(doc, "fuzz", env("X", "x\"y\\z\n"))
			if err != nil {
				t.Fatal(err)
			}
			var v struct{ K string }
			if _, err := toml.Decode(string(out), &v); err == nil && v.K != string(b)+"x\"y\\z\n" {
				t.Fatalf("%q: decoded %q", out, v.K)
			}
		}
	})
}

// TestDefaultFileHasEveryKey: config.toml shows (and so documents) every
// key Config has, so that a key added in code cannot go missing from the
// file users read.
func TestDefaultFileHasEveryKey(t *testing.T) {
	var c Config
	md, err := toml.Decode(string(DefaultFile()), &c)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix []string, typ reflect.Type)
	walk = func(prefix []string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			key := append(slices.Clone(prefix), tag)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration{}) {
				walk(key, f.Type)
				continue
			}
			if !md.IsDefined(key...) {
				t.Errorf("config.toml lacks %s", strings.Join(key, "."))
			}
		}
	}
	walk(nil, reflect.TypeOf(c))
}
