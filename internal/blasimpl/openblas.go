//go:build openblas

// Package blasimpl selects the BLAS behind gonum's blas64 for the whole
// binary. Built with -tags openblas, it is OpenBLAS through gonum's netlib
// cgo wrapper (Debian: libopenblas-dev); otherwise gonum's native Go and
// assembly kernels.
package blasimpl

/*
#cgo LDFLAGS: -lopenblas
void openblas_set_num_threads(int);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

// Name is the BLAS in use.
const Name = "openblas"

// One thread per call: tsrep already runs a learner per partition, and
// OpenBLAS's own threads would contend with them (and with Go's scheduler).
func init() {
	C.openblas_set_num_threads(1)
	blas64.Use(netlib.Implementation{})
}
