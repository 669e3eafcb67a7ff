package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tsrep/tsrep/report"
)

func init() { registry = append(registry, newReportCmd) }

func newReportCmd() *cobra.Command {
	var f queryInfluxFlags
	var series []string
	var out, from, to string
	var days float64
	var k int
	cmd := &cobra.Command{
		Use:   "report --series S1,S2 --out DIR",
		Short: "Draw PNG plots of forecasts, filled gaps, anomaly scores, similar series, training losses and embedding similarities",
		Long: `Draw PNG plots of what tsrep wrote to InfluxDB into --out:

  forecast_<series>.png   forecast next to actual, and the absolute error
  imputed_<series>.png    the filled gaps over the series' actual values
  anomaly_<series>.png    the anomaly score over time (tsrep_anomaly), and the
                          points that scored 0.5 or more on the series
  similar_<series>.png    the series most similar to it within the
                          encoder version of its newest embedding: the
                          ranking tsrep query similar prints
  losses.png              the training losses over time
  embeddings_cosine.png   a heat map of the cosine similarities between the
                          latest embeddings of one encoder version (the one
                          most series' newest embedding has)

The plots of time show the last --days days of each series' data (ending
at its newest point, or at --to); --from draws from there instead, and
--days 0 draws everything. The embedding plots are of the latest
embeddings (before --to).

<series> is the series key with every run of characters other than letters,
digits, '.', '-' and '_' replaced by '_'. A plot whose data is missing (a
learner that writes no embeddings or imputes nothing) is skipped, and why
is printed. --from is inclusive, --to exclusive (see tsrep query --help for
the time formats).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(series) == 0 {
				return fmt.Errorf("--series: name at least one series key, e.g. --series 'etth1,source=demo#OT'")
			}
			fromT, err := queryTimeFlag("from", from)
			if err != nil {
				return err
			}
			toT, err := queryTimeFlag("to", to)
			if err != nil {
				return err
			}
			if days < 0 {
				return fmt.Errorf("--days %v: give 0 (everything) or more", days)
			}
			if k < 1 {
				return fmt.Errorf("--k %d: give at least 1", k)
			}
			r, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer r.close()
			res, err := report.Write(cmd.Context(), r.q, report.Options{Series: series, From: fromT, To: toT, Days: days, K: k, Model: r.model, Dir: out})
			for _, p := range res.Files {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", p)
			}
			for _, s := range res.Skipped {
				fmt.Fprintf(cmd.OutOrStdout(), "skipped %s\n", s)
			}
			return err
		},
	}
	f.register(cmd.Flags())
	// A series key holds commas, escaped as "\,": split on unescaped
	// commas only (a plain StringSlice would cut the key).
	cmd.Flags().Var(&seriesList{&series}, "series", "series keys, comma-separated (repeatable); a comma inside a key is escaped as \\,")
	cmd.Flags().StringVarP(&out, "out", "o", "", "directory for the PNG files (created if missing)")
	cmd.Flags().StringVar(&from, "from", "", "start of the plotted range, inclusive (default: --days before the end of the data)")
	cmd.Flags().StringVar(&to, "to", "", "end of the plotted range, exclusive (default: no end)")
	cmd.Flags().Float64Var(&days, "days", 7, "without --from, plot the last DAYS days of each series' data (0: all of it)")
	cmd.Flags().IntVarP(&k, "k", "k", 10, "series in each similar_<series>.png")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// seriesList is a pflag.Value of series keys separated by commas that are
// not escaped with a backslash.
type seriesList struct{ v *[]string }

func (s *seriesList) String() string {
	if s.v == nil {
		return ""
	}
	return strings.Join(*s.v, ",")
}

func (s *seriesList) Set(v string) error {
	*s.v = append(*s.v, splitSeriesKeys(v)...)
	return nil
}

func (s *seriesList) Type() string { return "keys" }

// splitSeriesKeys splits a --series value into keys. A key has commas of
// its own (cpu,host=a#usage), so a comma separates two keys only once the
// key before it is complete, that is has its unescaped '#': the pieces
// between unescaped commas are joined until they hold a '#'. (A field name
// with a comma in it cannot be listed this way.)
func splitSeriesKeys(v string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case ',':
			parts = append(parts, v[start:i])
			start = i + 1
		}
	}
	parts = append(parts, v[start:])
	var out []string
	for _, p := range parts {
		if n := len(out); n > 0 && !hasUnescaped(out[n-1], '#') {
			out[n-1] += "," + p
			continue
		}
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func hasUnescaped(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == c {
			return true
		}
	}
	return false
}
