package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime reads a time as the query commands accept it:
//
//   - "" is the zero time (unbounded, or "latest" for an --at flag);
//   - "now";
//   - RFC 3339, with or without fractional seconds: 2016-07-01T00:00:00Z;
//   - a date or a date and time without zone, taken as UTC:
//     2016-07-01, 2016-07-01T12:00:00;
//   - a duration relative to now, as Go writes them plus d (24h) and
//     w (7d): -24h, -7d, -1d12h, +30m.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return time.Time{}, nil
	case "now":
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, err := parseRelative(s); err == nil {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2016-07-01T00:00:00Z), a date (2016-07-01), now, or an offset from now such as -24h or -7d", s)
}

// parseRelative parses a signed duration with the extra units d and w.
func parseRelative(s string) (time.Duration, error) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) {
			i++
		}
		j := i
		for j < len(s) && !(s[j] == '.' || (s[j] >= '0' && s[j] <= '9')) {
			j++
		}
		if i == 0 || j == i {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		num, unit := s[:i], s[i:j]
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, err
			}
			day := 24 * time.Hour
			if unit == "w" {
				day *= 7
			}
			d = time.Duration(f * float64(day))
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, err
			}
		}
		total += d
		s = s[j:]
	}
	if neg {
		total = -total
	}
	return total, nil
}
