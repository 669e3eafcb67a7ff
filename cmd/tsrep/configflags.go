package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tsrep/tsrep/config"
)

// configFlags are the configuration flags of every command that reads
// config.toml, with one meaning everywhere:
//
//	--config, -c   the file; default $TSREP_CONFIG, else config.toml
//	--set K=V      override a key (repeatable), after the file
//	--brokers      kafka.brokers (comma-separated), after --set
//	--influx-url   influx.url, after --set
//
// The file is read with ${VAR} interpolation (config.Interpolate).
type configFlags struct {
	path      string
	sets      []string
	brokers   string
	influxURL string
	// optional: with neither --config nor $TSREP_CONFIG, a missing
	// config.toml means the built-in defaults (commands that only read,
	// and the demo), instead of an error.
	optional bool
}

// configFlagSet says which connection flags a command has.
type configFlagSet int

const (
	flagBrokers configFlagSet = 1 << iota
	flagInfluxURL
)

// register adds --config, --set and the connection flags in which.
func (f *configFlags) register(fs *pflag.FlagSet, which configFlagSet, optional bool) {
	f.optional = optional
	usage := "configuration file (default: $" + config.EnvFile + ", else config.toml"
	if optional {
		usage += ", else the built-in defaults"
	}
	fs.StringVarP(&f.path, "config", "c", "", usage+"); ${VAR} and ${VAR:-default} in it are read from the environment")
	fs.StringArrayVar(&f.sets, "set", nil, "override a key of the configuration, section.key=value (repeatable; the value is TOML, else a string): "+
		`--set kafka.group=g2 --set window.length=96 --set 'kafka.brokers=["a:9092","b:9092"]'`)
	if which&flagBrokers != 0 {
		fs.StringVar(&f.brokers, "brokers", "", "Kafka brokers, comma-separated host:port (default: kafka.brokers of the config)")
	}
	if which&flagInfluxURL != 0 {
		fs.StringVar(&f.influxURL, "influx-url", "", "InfluxDB URL (default: influx.url of the config)")
	}
}

// load reads the configuration the flags name. sets come before the
// user's --set (a command's own defaults, which --set may change). It
// returns the configuration and where it came from (a file name, or
// "built-in defaults").
func (f *configFlags) load(cmd *cobra.Command, sets ...string) (config.Config, string, error) {
	path, named := f.path, f.path != ""
	if !named {
		path = "config.toml"
		if p := os.Getenv(config.EnvFile); p != "" {
			path, named = p, true
		}
	}
	l := config.Loader{Sets: append(sets, f.sets...), Override: f.override}
	if !named && f.optional {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			const src = "built-in defaults"
			c, err := l.Parse(nil, src)
			return c, src, err
		}
	}
	c, err := l.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (name a file with --config or $%s; `tsrep config > config.toml` writes one with the defaults)", err, config.EnvFile)
	}
	return c, path, err
}

// override applies the connection flags.
func (f *configFlags) override(c *config.Config) {
	if f.brokers != "" {
		c.Kafka.Brokers = splitList(f.brokers)
	}
	if f.influxURL != "" {
		c.Influx.URL = f.influxURL
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
