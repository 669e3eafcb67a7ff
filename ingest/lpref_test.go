package ingest

// The decoder tsrep used before lpparse.go: line-protocol/v2 itself. It is
// the reference the differential tests compare LineProtocol with.

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// refLineProtocol decodes InfluxDB line protocol, as Telegraf's Kafka output
// writes it: one or more lines per message, multi-field points, any tag
// order, integer/unsigned/float/boolean fields (string fields are skipped).
// A bad line is reported to the Handler and the next line is decoded.
type refLineProtocol struct {
	o    Options
	b    pointBuilder
	meas []byte
}

func newRefLineProtocol(o Options) *refLineProtocol {
	d := &refLineProtocol{o: o.withDefaults()}
	d.b.setCaps(d.o)
	return d
}

// Decode implements Decoder.
func (d *refLineProtocol) Decode(value []byte, msgTime int64, h Handler) {
	if !checkMessage(value, d.o, h) {
		return
	}
	dec := lineprotocol.NewDecoderWithBytes(value)
	pos := 0
	for dec.Next() {
		// The entry's raw text, for the dead-letter record: entries are
		// found with the decoder's own rules (blank and comment lines
		// skipped, newlines allowed inside quoted string fields).
		var raw []byte
		raw, pos = nextEntry(value, pos)
		if reason, err := d.decodeLine(dec, msgTime, h); err != nil {
			h.Bad(raw, reason, err)
		}
	}
}

func (d *refLineProtocol) decodeLine(dec *lineprotocol.Decoder, msgTime int64, h Handler) (Reason, error) {
	d.b.reset()
	m, err := dec.Measurement()
	if err != nil {
		return ReasonSyntax, err
	}
	d.meas = append(d.meas[:0], m...)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return ReasonSyntax, err
		}
		if k == nil {
			break
		}
		d.b.addTag(k, v)
	}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			if errors.Is(err, lineprotocol.ErrValueOutOfRange) {
				return ReasonOutOfRange, err
			}
			return ReasonSyntax, err
		}
		if k == nil {
			break
		}
		var f float64
		switch v.Kind() {
		case lineprotocol.Float:
			f = v.FloatV()
		case lineprotocol.Int:
			f = float64(v.IntV())
		case lineprotocol.Uint:
			f = float64(v.UintV())
		case lineprotocol.Bool:
			if v.BoolV() {
				f = 1
			}
		default:
			d.b.nFields++ // counted against the cap, as the parser does
			continue      // strings carry no number to learn from
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return ReasonNonFinite, fmt.Errorf("field %q is not finite", k)
		}
		d.b.addField(k, f)
	}
	tb, err := dec.TimeBytes()
	if err != nil {
		return ReasonSyntax, err
	}
	t, reason, err := d.o.checkPoint(&d.b, d.meas, tb, msgTime)
	if err != nil {
		return reason, err
	}
	h.Point(d.b.finish(d.meas, t))
	return "", nil
}

// nextEntry returns the line-protocol entry that starts at or after pos
// and the position after it. It skips what the decoder skips (whitespace,
// empty lines, '#' comments) and ends an entry at the first newline that is
// not inside a quoted string field value.
func nextEntry(b []byte, pos int) ([]byte, int) {
	for pos < len(b) {
		switch b[pos] {
		case ' ', '\t', '\r', '\n':
			pos++
			continue
		case '#':
			for pos < len(b) && b[pos] != '\n' {
				pos++
			}
			continue
		}
		break
	}
	start := pos
	section := 0 // 0 measurement and tags, 1 fields, 2 timestamp
	inQuote, prevSpace := false, false
	for pos < len(b) {
		c := b[pos]
		if c != ' ' {
			prevSpace = false
		}
		switch {
		case c == '\\' && pos+1 < len(b) && b[pos+1] != '\n':
			pos += 2
			continue
		case inQuote:
			if c == '"' {
				inQuote = false
			}
		case c == '\n':
			return bytes.TrimRight(b[start:pos], "\r"), pos + 1
		case c == '"' && section == 1:
			inQuote = true
		case c == ' ':
			if !prevSpace {
				section++
			}
			prevSpace = true
		}
		pos++
	}
	return bytes.TrimRight(b[start:], "\r"), pos
}
