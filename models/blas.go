package models

import "github.com/tsrep/tsrep/internal/blasimpl"

// BLAS names the BLAS implementation the learners' matrix work runs on:
// "gonum" (gonum's native kernels, the default) or "openblas" (built with
// -tags openblas).
const BLAS = blasimpl.Name
