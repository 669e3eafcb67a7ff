package ingest

import (
	"errors"
	"strings"
)

// A series is one field of one measurement + tag set. Its key is written as
// in line protocol, with the field after a '#':
//
//	cpu,host=a,region=eu#usage_idle
//
// As in line protocol, the measurement escapes ',' and ' ', tag keys and
// values escape ',', '=' and ' '; all parts also escape '#' and '\', each
// with a backslash, so the key parses back unambiguously. Tags are sorted by
// key, so the key is canonical: one series, one key.

// AppendSeriesKey appends the key of p's field f to dst.
func AppendSeriesKey(dst []byte, p *Point, f int) []byte {
	return AppendFieldKey(AppendSeriesPrefix(dst, p), p.Fields[f].Key)
}

// AppendFieldKey appends the '#' and escaped field that turn a group key
// (AppendSeriesPrefix) into a series key.
func AppendFieldKey(dst, field []byte) []byte {
	dst = append(dst, '#')
	return appendEscaped(dst, field, fieldEsc)
}

// AppendSeriesPrefix appends the measurement + tag set part of p's keys
// (everything before the '#'): the key of the group of p's fields.
func AppendSeriesPrefix(dst []byte, p *Point) []byte {
	dst = appendEscaped(dst, p.Measurement, measurementEsc)
	for _, t := range p.Tags {
		dst = append(dst, ',')
		dst = appendEscaped(dst, t.Key, tagEsc)
		dst = append(dst, '=')
		dst = appendEscaped(dst, t.Value, tagEsc)
	}
	return dst
}

var (
	measurementEsc = escSet(", #\\")
	tagEsc         = escSet(",= #\\")
	fieldEsc       = escSet("#\\")
)

func appendEscaped(dst, s []byte, esc *byteSet) []byte {
	j := 0
	for i, c := range s {
		if esc[c] {
			dst = append(dst, s[j:i]...)
			dst = append(dst, '\\')
			j = i
		}
	}
	return append(dst, s[j:]...)
}

// SeriesID is a parsed series key.
type SeriesID struct {
	Measurement string
	Tags        []KV // sorted by key
	Field       string
}

// KV is a tag as strings.
type KV struct{ Key, Value string }

// ErrBadSeriesKey is returned by ParseSeriesKey for malformed keys.
var ErrBadSeriesKey = errors.New("malformed series key (want measurement[,tag=value...]#field)")

// ParseSeriesKey parses a key written by AppendSeriesKey.
func ParseSeriesKey(key string) (SeriesID, error) {
	var id SeriesID
	var cur []byte
	i := 0
	cur, i = unescapeUntil(key, i, ",#") // the measurement
	if len(cur) == 0 {
		return id, ErrBadSeriesKey
	}
	id.Measurement = string(cur)
	for i < len(key) && key[i] == ',' {
		var k, v []byte
		k, i = unescapeUntil(key, i+1, "=,#")
		if i >= len(key) || key[i] != '=' || len(k) == 0 {
			return id, ErrBadSeriesKey
		}
		v, i = unescapeUntil(key, i+1, ",#")
		id.Tags = append(id.Tags, KV{string(k), string(v)})
	}
	if i >= len(key) || key[i] != '#' {
		return id, ErrBadSeriesKey
	}
	cur, i = unescapeUntil(key, i+1, "")
	if len(cur) == 0 || i != len(key) {
		return id, ErrBadSeriesKey
	}
	id.Field = string(cur)
	return id, nil
}

// unescapeUntil reads key from i up to the first unescaped byte in stop and
// returns the unescaped text and the stop position.
func unescapeUntil(key string, i int, stop string) ([]byte, int) {
	var out []byte
	for i < len(key) {
		c := key[i]
		if c == '\\' && i+1 < len(key) {
			out = append(out, key[i+1])
			i += 2
			continue
		}
		if strings.IndexByte(stop, c) >= 0 {
			break
		}
		out = append(out, c)
		i++
	}
	return out, i
}

// String writes the key back.
func (id SeriesID) String() string {
	p := Point{Measurement: []byte(id.Measurement), Fields: []Field{{Key: []byte(id.Field)}}}
	for _, t := range id.Tags {
		p.Tags = append(p.Tags, Tag{[]byte(t.Key), []byte(t.Value)})
	}
	return string(AppendSeriesKey(nil, &p, 0))
}
