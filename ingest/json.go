package ingest

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/valyala/fastjson"
)

// JSON decodes JSON points. A message holds one object or an array of them:
//
//	{"measurement": "cpu", "tags": {"host": "a"}, "fields": {"usage": 0.5}, "time": 1700000000000000000}
//
// Telegraf's JSON serializer spelling ("name", "timestamp") is accepted too.
// "time" is an integer in kafka.precision units, or an RFC 3339 string;
// missing, the message timestamp is used. Tag values must be strings; field
// values numbers or booleans (strings and nulls are skipped). The
// measurement, tag keys and values and field keys must be names InfluxDB
// stores (as line protocol's grammar requires of them): non-empty, valid
// UTF-8, no control characters, no trailing backslash; else the point is
// ReasonInvalidName, reported with its text at decode time.
type JSON struct {
	o      Options
	p      fastjson.Parser
	b      pointBuilder
	meas   []byte
	reason Reason
	err    error
}

// NewJSON returns a JSON decoder.
func NewJSON(o Options) *JSON {
	d := &JSON{o: o.withDefaults()}
	d.b.setCaps(d.o)
	return d
}

// Decode implements Decoder.
func (d *JSON) Decode(value []byte, msgTime int64, h Handler) {
	if !checkMessage(value, d.o, h) {
		return
	}
	v, err := d.p.ParseBytes(value)
	if err != nil {
		h.Bad(value, ReasonSyntax, err)
		return
	}
	switch v.Type() {
	case fastjson.TypeObject:
		d.decodeObject(v, value, msgTime, h)
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for _, o := range arr {
			if o.Type() != fastjson.TypeObject {
				h.Bad(o.MarshalTo(nil), ReasonWrongType, errors.New("array element is not an object"))
				continue
			}
			d.decodeObject(o, nil, msgTime, h)
		}
	default:
		h.Bad(value, ReasonWrongType, fmt.Errorf("message is a JSON %s, not an object or array of objects", v.Type()))
	}
}

// decodeObject decodes one point object; raw is its text when the message
// is that object alone (else it is re-marshalled for a dead letter).
func (d *JSON) decodeObject(v *fastjson.Value, raw []byte, msgTime int64, h Handler) {
	if reason, err := d.object(v, msgTime, h); err != nil {
		if raw == nil {
			raw = v.MarshalTo(nil)
		}
		h.Bad(raw, reason, err)
	}
}

func (d *JSON) object(v *fastjson.Value, msgTime int64, h Handler) (Reason, error) {
	d.b.reset()
	m := v.Get("measurement")
	if m == nil {
		m = v.Get("name")
	}
	if m == nil || m.Type() != fastjson.TypeString {
		return ReasonWrongType, errors.New(`"measurement" (or "name") must be a string`)
	}
	mb, _ := m.StringBytes()
	if err := validName(mb); err != nil {
		return ReasonInvalidName, fmt.Errorf(`"measurement" %w`, err)
	}
	d.meas = append(d.meas[:0], mb...)

	if tags := v.Get("tags"); tags != nil && tags.Type() != fastjson.TypeNull {
		o, err := tags.Object()
		if err != nil {
			return ReasonWrongType, errors.New(`"tags" must be an object`)
		}
		d.reason, d.err = "", nil
		o.Visit(d.visitTag)
		if d.err != nil {
			return d.reason, d.err
		}
	}

	fields := v.Get("fields")
	if fields == nil {
		return ReasonWrongType, errors.New(`"fields" is missing`)
	}
	o, err := fields.Object()
	if err != nil {
		return ReasonWrongType, errors.New(`"fields" must be an object`)
	}
	d.reason, d.err = "", nil
	o.Visit(d.visitField)
	if d.err != nil {
		return d.reason, d.err
	}

	if reason, err := d.b.checkLimits(d.meas, &d.o); err != nil {
		return reason, err
	}
	t := msgTime
	tv := v.Get("time")
	if tv == nil {
		tv = v.Get("timestamp")
	}
	if tv != nil {
		switch tv.Type() {
		case fastjson.TypeNumber:
			i, err := tv.Int64()
			if err != nil {
				return ReasonBadTimestamp, fmt.Errorf("time %s is not an integer in int64 range", tv)
			}
			var reason Reason
			if t, reason, err = d.o.timestamp(i, msgTime); err != nil {
				return reason, err
			}
		case fastjson.TypeString:
			s, _ := tv.StringBytes()
			pt, err := time.Parse(time.RFC3339Nano, string(s))
			if err != nil {
				return ReasonBadTimestamp, fmt.Errorf("time %q is not RFC 3339", s)
			}
			if pt.Before(time.Unix(0, MinTime)) || pt.After(time.Unix(0, MaxTime)) {
				return ReasonBadTimestamp, fmt.Errorf("time %q is outside InfluxDB's range (%s to %s)", s,
					time.Unix(0, MinTime).UTC().Format(time.RFC3339Nano), time.Unix(0, MaxTime).UTC().Format(time.RFC3339Nano))
			}
			t = pt.UnixNano()
		case fastjson.TypeNull:
		default:
			return ReasonBadTimestamp, errors.New(`"time" must be an integer or an RFC 3339 string`)
		}
	}
	if !futureOK(t, msgTime, d.o.MaxFuture) {
		return ReasonFuture, fmt.Errorf("timestamp %d is more than kafka.max_future ahead of the message time %d", t, msgTime)
	}
	if len(d.b.fldOff) == 0 {
		return ReasonNoNumericField, errors.New("point has no numeric field")
	}
	h.Point(d.b.finish(d.meas, t))
	return "", nil
}

func (d *JSON) visitTag(k []byte, v *fastjson.Value) {
	if d.err != nil {
		return
	}
	if v.Type() != fastjson.TypeString {
		d.reason, d.err = ReasonWrongType, fmt.Errorf("tag %q has JSON type %s, want a string", k, v.Type())
		return
	}
	s, _ := v.StringBytes()
	if err := validName(k); err != nil {
		d.reason, d.err = ReasonInvalidName, fmt.Errorf("tag key %w", err)
		return
	}
	if err := validName(s); err != nil {
		d.reason, d.err = ReasonInvalidName, fmt.Errorf("tag %q: value %w", k, err)
		return
	}
	d.b.addTag(k, s)
}

func (d *JSON) visitField(k []byte, v *fastjson.Value) {
	if d.err != nil {
		return
	}
	if err := validName(k); err != nil {
		d.reason, d.err = ReasonInvalidName, fmt.Errorf("field key %w", err)
		return
	}
	var f float64
	switch v.Type() {
	case fastjson.TypeNumber:
		var err error
		f, err = v.Float64()
		if err != nil || math.IsInf(f, 0) {
			d.reason, d.err = ReasonOutOfRange, fmt.Errorf("field %q = %s is out of the float64 range", k, v)
			return
		}
		if math.IsNaN(f) {
			d.reason, d.err = ReasonNonFinite, fmt.Errorf("field %q is NaN", k)
			return
		}
	case fastjson.TypeTrue:
		f = 1
	case fastjson.TypeFalse:
		f = 0
	case fastjson.TypeString, fastjson.TypeNull:
		d.b.nFields++ // counted against kafka.max_fields, not kept
		return
	default:
		d.reason, d.err = ReasonWrongType, fmt.Errorf("field %q has JSON type %s, want a number or boolean", k, v.Type())
		return
	}
	d.b.addField(k, f)
}
