package quality

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table prints aligned columns.
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.head, "\t"))
	dash := make([]string, len(t.head))
	for i, h := range t.head {
		dash[i] = strings.Repeat("-", len(h))
	}
	fmt.Fprintln(tw, strings.Join(dash, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func num(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.4f", v)
}

func count(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// WriteTable prints the result as an aligned table.
func (r *ForecastResult) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "forecast %s: %d channels, rows train %d / val %d / test %d, window %d, %d epoch(s), %d train steps, %.1fs\n",
		r.Data, len(r.Columns), r.Split.Train, r.Split.Val, r.Split.Test, r.Length, r.Epochs, r.Steps, r.Seconds)
	fmt.Fprintf(w, "protocol: %s\n\n", r.Protocol)
	t := table{head: []string{"method", "kind", "MSE", "MAE", "points", "MSE over seeds"}}
	for _, f := range r.Figures {
		t.add(f.Method, f.Kind, num(f.MSE), num(f.MAE), count(f.N), f.Seeds.String())
	}
	if err := t.write(w); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nlearner MSE / best RLS baseline (%s) = %.3f\n", r.BestRLS, r.LearnerOverBestRLS)
	return err
}

// String prints the spread as "min–max (std s, n seeds)"; empty for nil.
func (s *MSESpread) String() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%.4f–%.4f (std %.4f, %d seeds)", s.Min, s.Max, s.Std, len(s.PerSeed))
}
