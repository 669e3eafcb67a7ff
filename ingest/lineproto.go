package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// LineProtocol decodes InfluxDB line protocol, as Telegraf's Kafka output
// writes it: one or more lines per message, multi-field points, any tag
// order, integer/unsigned/float/boolean fields (string fields are skipped).
// A bad line is reported to the Handler and the next line is decoded. It
// does not allocate in steady state.
type LineProtocol struct {
	o Options
	b pointBuilder
	p lpParser
}

// NewLineProtocol returns a line-protocol decoder.
func NewLineProtocol(o Options) *LineProtocol {
	d := &LineProtocol{o: o.withDefaults()}
	d.p.b = &d.b
	d.b.setCaps(d.o)
	return d
}

// Decode implements Decoder.
func (d *LineProtocol) Decode(value []byte, msgTime int64, h Handler) {
	if !checkMessage(value, d.o, h) {
		return
	}
	for pos := skipEmptyLines(value, 0); pos < len(value); pos = skipEmptyLines(value, pos) {
		start := pos
		var reason Reason
		var err error
		pos, reason, err = d.decodeEntry(value, pos, msgTime, h)
		if err != nil {
			h.Bad(bytes.TrimRight(value[start:pos], "\r\n"), reason, err)
		}
	}
}

// decodeEntry decodes the entry at buf[start] and returns where the next
// one starts.
func (d *LineProtocol) decodeEntry(buf []byte, start int, msgTime int64, h Handler) (int, Reason, error) {
	end, meas, tb, e := d.p.parse(buf, start)
	if e.err != nil {
		if e.here && e.at > start {
			return e.at, e.reason, e.err
		}
		return recoverLine(buf, e.at), e.reason, e.err
	}
	reason, err := d.point(meas, tb, msgTime, h)
	return end, reason, err
}

func (d *LineProtocol) point(meas, tb []byte, msgTime int64, h Handler) (Reason, error) {
	t, reason, err := d.o.checkPoint(&d.b, meas, tb, msgTime)
	if err != nil {
		return reason, err
	}
	h.Point(d.b.finish(meas, t))
	return "", nil
}

// checkPoint runs the checks of a parsed line-protocol point, in order:
// the caps, its timestamp (tb, nil when it has none), kafka.max_future,
// a numeric field. It returns the point's time.
func (o *Options) checkPoint(b *pointBuilder, meas, tb []byte, msgTime int64) (int64, Reason, error) {
	if reason, err := b.checkLimits(meas, o); err != nil {
		return 0, reason, err
	}
	t := msgTime
	if tb != nil {
		ts, err := strconv.ParseInt(string(tb), 10, 64)
		if err != nil {
			return 0, ReasonBadTimestamp, fmt.Errorf("invalid timestamp %q", tb)
		}
		var reason Reason
		if t, reason, err = o.timestamp(ts, msgTime); err != nil {
			return 0, reason, err
		}
	}
	if !futureOK(t, msgTime, o.MaxFuture) {
		return 0, ReasonFuture, fmt.Errorf("timestamp %d is more than kafka.max_future ahead of the message time %d", t, msgTime)
	}
	if len(b.fldOff) == 0 {
		return 0, ReasonNoNumericField, errors.New("point has no numeric field")
	}
	return t, "", nil
}
