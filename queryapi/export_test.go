package queryapi

import "github.com/go-chi/chi/v5"

// Router is the server's route table, for a test to walk.
func (s *Server) Router() chi.Routes { return s.router }
