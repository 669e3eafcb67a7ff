package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Check probes what the writer needs, now: the server answers, and the
// bucket (on 1.x the database, and the retention policy if one is named)
// exists. It is what /readyz reports; nil means healthy.
func (s *Influx) Check(ctx context.Context) error {
	h, err := s.client.Health(ctx)
	if err != nil {
		return fmt.Errorf("unreachable: %w", err)
	}
	if h.Status != "pass" {
		msg := ""
		if h.Message != nil {
			msg = *h.Message
		}
		return fmt.Errorf("health %s %s", h.Status, msg)
	}
	if s.v1 {
		db, rp, _ := strings.Cut(s.cfg.Bucket, "/")
		dbs, err := showV1(ctx, s.cfg.URL, s.cfg.Token, "SHOW DATABASES")
		if err != nil {
			return err
		}
		if !slices.Contains(dbs, db) {
			return fmt.Errorf("database %q does not exist", db)
		}
		if rp != "" {
			rps, err := showV1(ctx, s.cfg.URL, s.cfg.Token, fmt.Sprintf("SHOW RETENTION POLICIES ON %q", db))
			if err != nil {
				return err
			}
			if !slices.Contains(rps, rp) {
				return fmt.Errorf("retention policy %q of database %q does not exist", rp, db)
			}
		}
		return nil
	}
	if _, err := s.client.BucketsAPI().FindBucketByName(ctx, s.cfg.Bucket); err != nil {
		return fmt.Errorf("bucket %q: %w", s.cfg.Bucket, err)
	}
	return nil
}

// showV1 runs an InfluxQL SHOW statement on 1.x and returns the first
// column of its rows.
func showV1(ctx context.Context, base, token, q string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/query?q="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	if u, p, ok := strings.Cut(token, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []struct{ Values [][]any }
			Error  string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", q, resp.Status, err)
	}
	var out []string
	for _, res := range r.Results {
		if res.Error != "" {
			return nil, fmt.Errorf("%s: %s", q, res.Error)
		}
		for _, se := range res.Series {
			for _, v := range se.Values {
				if len(v) > 0 {
					if s, ok := v[0].(string); ok {
						out = append(out, s)
					}
				}
			}
		}
	}
	return out, nil
}
