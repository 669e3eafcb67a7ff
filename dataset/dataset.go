// Package dataset reads the tabular files tsrep is fed offline: a CSV with
// a time column and numeric columns (ETT, NAB, or any file of that shape)
// and UCR archive TSV files (label, then one series per row). The produce,
// replay and bench commands share it.
package dataset

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Frame is a table of numeric columns over a time column.
type Frame struct {
	Names []string
	// Time is each row's time in Unix nanoseconds.
	Time []int64
	// Cols holds one slice per column, NaN where a cell is empty or not a
	// number.
	Cols [][]float64
}

// Rows is the number of rows.
func (f *Frame) Rows() int { return len(f.Time) }

// CSVOptions configure ReadCSV.
type CSVOptions struct {
	// TimeColumn names the time column; empty picks the first column named
	// date, time, timestamp or datetime (any case), else the first column.
	TimeColumn string
	// TimeLayout is a Go time layout; empty infers one from the first rows
	// (see Layouts), numbers being Unix epoch in s, ms, µs or ns by size.
	TimeLayout string
}

// Layouts are the layouts tried, in order, when none is given.
var Layouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006/01/02 15:04:05",
	"2006/01/02 15:04",
	"01/02/2006 15:04:05",
	"01/02/2006 15:04",
	"02.01.2006 15:04:05",
	"2006-01-02",
	"2006/01/02",
	"01/02/2006",
}

// EpochLayout is the layout name of numeric Unix timestamps.
const EpochLayout = "epoch"

// ReadCSV reads a CSV file.
func ReadCSV(path string, o CSVOptions) (*Frame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fr, err := ParseCSV(bufio.NewReader(f), o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fr, nil
}

// ParseCSV reads CSV text; the first row is the header.
func ParseCSV(r io.Reader, o CSVOptions) (*Frame, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	head = append([]string(nil), head...)
	tc := -1
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		head[i] = h
		if o.TimeColumn != "" {
			if h == o.TimeColumn {
				tc = i
			}
		} else if tc < 0 {
			switch strings.ToLower(h) {
			case "date", "time", "timestamp", "datetime":
				tc = i
			}
		}
	}
	if tc < 0 {
		if o.TimeColumn != "" {
			return nil, fmt.Errorf("no column named %q (columns: %s)", o.TimeColumn, strings.Join(head, ", "))
		}
		tc = 0
	}
	fr := &Frame{}
	idx := []int{}
	for i, h := range head {
		if i != tc {
			fr.Names = append(fr.Names, h)
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, errors.New("no value columns besides the time column")
	}
	fr.Cols = make([][]float64, len(idx))
	layout := o.TimeLayout
	line := 1
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if tc >= len(rec) {
			return nil, fmt.Errorf("line %d: no time column", line)
		}
		ts := strings.TrimSpace(rec[tc])
		if layout == "" {
			if layout = InferLayout(ts); layout == "" {
				return nil, fmt.Errorf("line %d: cannot infer the time layout of %q; give one (a Go layout such as 2006-01-02 15:04:05)", line, ts)
			}
		}
		t, err := ParseTime(ts, layout)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		fr.Time = append(fr.Time, t)
		for j, i := range idx {
			v := math.NaN()
			if i < len(rec) {
				if x, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64); err == nil && !math.IsInf(x, 0) {
					v = x
				}
			}
			fr.Cols[j] = append(fr.Cols[j], v)
		}
	}
	if len(fr.Time) == 0 {
		return nil, errors.New("no data rows")
	}
	return fr, nil
}

// InferLayout returns the first layout of Layouts that parses s, EpochLayout
// for an integer, or "" if none does.
func InferLayout(s string) string {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return EpochLayout
	}
	for _, l := range Layouts {
		if _, err := time.Parse(l, s); err == nil {
			return l
		}
	}
	return ""
}

// ParseTime parses s with layout (UTC unless the text has a zone); with
// EpochLayout the unit is chosen by magnitude.
func ParseTime(s, layout string) (int64, error) {
	if layout == EpochLayout {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("time %q is not an integer", s)
		}
		switch a := abs(n); {
		case a < 1e11: // seconds up to year 5138
			return n * 1e9, nil
		case a < 1e14:
			return n * 1e6, nil
		case a < 1e17:
			return n * 1e3, nil
		default:
			return n, nil
		}
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return 0, fmt.Errorf("time %q does not match layout %q", s, layout)
	}
	return t.UnixNano(), nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// Slice returns rows [from, to) of the frame, sharing storage.
func (f *Frame) Slice(from, to int) *Frame {
	out := &Frame{Names: f.Names, Time: f.Time[from:to], Cols: make([][]float64, len(f.Cols))}
	for i, c := range f.Cols {
		out.Cols[i] = c[from:to]
	}
	return out
}

// UCR is a UCR archive split: a label and a series per row.
type UCR struct {
	Labels []string
	Series [][]float64
}

// ReadUCR reads a UCR archive TSV (or CSV) file: the class label first,
// then the values; "NaN" pads series shorter than the longest.
func ReadUCR(path string) (*UCR, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := &UCR{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.FieldsFunc(text, func(r rune) bool { return r == '\t' || r == ',' || r == ' ' })
		if len(fields) < 2 {
			return nil, fmt.Errorf("%s:%d: want a label and at least one value", path, line)
		}
		s := make([]float64, 0, len(fields)-1)
		for _, x := range fields[1:] {
			v, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %q is not a number", path, line, x)
			}
			s = append(s, v)
		}
		for len(s) > 0 && math.IsNaN(s[len(s)-1]) {
			s = s[:len(s)-1]
		}
		u.Labels = append(u.Labels, normLabel(fields[0]))
		u.Series = append(u.Series, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(u.Series) == 0 {
		return nil, fmt.Errorf("%s: no series", path)
	}
	return u, nil
}

// normLabel writes numeric labels canonically ("1.0000000e+00" and "1" agree).
func normLabel(s string) string {
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return s
}
