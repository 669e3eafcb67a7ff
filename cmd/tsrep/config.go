package main

import (
	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/config"
)

func init() { registry = append(registry, newConfigCmd) }

func newConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the default configuration, every key commented (tsrep config > config.toml)",
		Long: `config prints config.toml as shipped: every key with its default and a
comment. Commands read it from --config FILE, else from the file
$TSREP_CONFIG names, else from ./config.toml. In the file, ${VAR} is the
environment variable VAR (an error if it is unset), ${VAR:-default} falls
back to default when VAR is unset or empty, and $$ is a literal $.
--set section.key=value overrides one key after the file (repeatable).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.DefaultFile())
			return err
		},
	}
}
