//go:build !openblas

// Package blasimpl selects the BLAS behind gonum's blas64 for the whole
// binary. Built with -tags openblas, it is OpenBLAS through gonum's netlib
// cgo wrapper (Debian: libopenblas-dev); otherwise gonum's native Go and
// assembly kernels.
package blasimpl

// Name is the BLAS in use.
const Name = "gonum"
