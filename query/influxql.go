package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// iqlClient runs InfluxQL on the v1 /query endpoint, which InfluxDB 1.8,
// 2.x (through its DBRP mapping: a bucket "db/rp", or "db" whose default
// retention policy is used) and 3.x serve. Answers are read with
// epoch=ns (times as integers) and chunked (a stream of JSON objects, so
// a large answer is never held as one document; a server that ignores
// chunking sends one object, read the same way).
type iqlClient struct {
	hc     *http.Client
	url    string // base URL + /query
	token  string
	db, rp string
}

// chunkSize is the rows per chunk asked of the server.
const chunkSize = 10000

func newIQLClient(hc *http.Client, baseURL, token, bucket string) (*iqlClient, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("influx url %q: want http(s)://host:port", baseURL)
	}
	db, rp, _ := strings.Cut(bucket, "/")
	if db == "" {
		return nil, errors.New("bucket is empty: set influx.bucket (the database on InfluxDB 1.8)")
	}
	return &iqlClient{hc: hc, url: strings.TrimRight(baseURL, "/") + "/query", token: token, db: db, rp: rp}, nil
}

// iqlSeries is one series of an InfluxQL answer (or the part of it one
// chunk holds).
type iqlSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

type iqlResult struct {
	StatementID int         `json:"statement_id"`
	Series      []iqlSeries `json:"series"`
	Error       string      `json:"error"`
}

type iqlResponse struct {
	Results []iqlResult `json:"results"`
	Error   string      `json:"error"`
}

// run sends the statements (joined by "; ") in one request and calls fn
// for every row, with the index of the statement it answers. Each row's
// time is under "time", as Unix nanoseconds.
func (c *iqlClient) run(ctx context.Context, stmts []string, fn func(stmt int, r row) error) error {
	form := url.Values{
		"db":         {c.db},
		"q":          {strings.Join(stmts, "; ")},
		"epoch":      {"ns"},
		"chunked":    {"true"},
		"chunk_size": {strconv.Itoa(chunkSize)},
	}
	if c.rp != "" {
		form.Set("rp", c.rp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		// 2.x and 3.x take their token so; 1.8 takes "user:password".
		req.Header.Set("Authorization", "Token "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("influxql query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return c.httpError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	for {
		var r iqlResponse
		if err := dec.Decode(&r); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("influxql query: read the answer: %w", err)
		}
		if r.Error != "" {
			return c.serverError(r.Error)
		}
		for _, res := range r.Results {
			if res.Error != "" {
				return c.serverError(res.Error)
			}
			for si := range res.Series {
				s := &res.Series[si]
				for _, vals := range s.Values {
					rw, err := s.row(vals)
					if err != nil {
						return err
					}
					if err := fn(res.StatementID, rw); err != nil {
						return err
					}
				}
			}
		}
	}
}

// row turns one row of s into a row: tags from the series, values by
// column (json.Number as int64 when it is an integer, else float64).
func (s *iqlSeries) row(vals []any) (row, error) {
	r := row{tags: s.Tags, vals: make(map[string]any, len(vals))}
	for i, v := range vals {
		if i >= len(s.Columns) {
			break
		}
		if n, ok := v.(json.Number); ok {
			v = number(n)
		}
		if s.Columns[i] == "time" {
			ns, ok := v.(int64)
			if !ok {
				return row{}, fmt.Errorf("influxql query: time %v is not an integer (the answer was not read with epoch=ns)", vals[i])
			}
			r.time = time.Unix(0, ns).UTC()
			continue
		}
		r.vals[s.Columns[i]] = v
	}
	return r, nil
}

func number(n json.Number) any {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return nil
	}
	return f
}

// httpError explains a failed request, with what to change where that
// is clear.
func (c *iqlClient) httpError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var r iqlResponse
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &r) == nil && r.Error != "" {
		msg = r.Error
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("influxql query: %s: %s (set the variable influx.token_env names: a token on InfluxDB 2.x/3.x, user:password on 1.8)", resp.Status, msg)
	case http.StatusNotFound:
		return fmt.Errorf("influxql query: %s at %s: this server has no InfluxQL /query endpoint (set influx.query_language = \"flux\")", resp.Status, c.url)
	}
	if strings.Contains(msg, "database not found") {
		return c.serverError(msg)
	}
	return fmt.Errorf("influxql query: %s: %s", resp.Status, msg)
}

func (c *iqlClient) serverError(msg string) error {
	if strings.Contains(msg, "database not found") || strings.Contains(msg, "retention policy not found") {
		return fmt.Errorf("influxql query: %s (database %q from influx.bucket; on InfluxDB 2.x the bucket needs a DBRP mapping: influx v1 dbrp create, or set influx.query_language = \"flux\")", msg, c.db)
	}
	return fmt.Errorf("influxql query: %s", msg)
}

// statements joins statements as the explain text shows them.
func statements(stmts []string) string {
	var b bytes.Buffer
	for i, s := range stmts {
		if i > 0 {
			b.WriteString(";\n")
		}
		b.WriteString(s)
	}
	return b.String()
}
