package ingest

import (
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tsrep/tsrep/config"
)

// NewDialer returns the dialer every Kafka connection of tsrep uses.
func NewDialer(c config.Kafka) (*kafka.Dialer, error) {
	return &kafka.Dialer{
		ClientID:  c.ClientID,
		Timeout:   10 * time.Second,
		DualStack: true,
	}, nil
}
