// OpenMPI (Debian: libopenmpi-dev; pkg-config ompi-c) for the Distributed module.
// MPI's handles are macros Swift cannot import: these functions return them.
#include <mpi.h>

static inline MPI_Comm ds2_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype ds2_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype ds2_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype ds2_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Errhandler ds2_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *ds2_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *ds2_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline int ds2_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
