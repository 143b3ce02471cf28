/* A fake libnvidia-ml.so.1 for tests: answers the NVML calls kubegpu.core.gpu_facts
 * makes from a JSON scenario file named by FAKE_NVML_SCENARIO (see README.md).
 *
 * What it simulates: the C ABI of NVML as the real pynvml binding calls it
 * (function names, argument layouts, struct layouts, return codes), init/shutdown
 * reference counting, "driver not loaded", per-device NOT_SUPPORTED answers, and
 * an old driver whose library lacks a newer entry point (FUNCTION_NOT_FOUND).
 * Functions NVML has but this library does not define are absent from its symbol
 * table, so pynvml reports FUNCTION_NOT_FOUND for them, as with an old driver.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"

#define EXPORT __attribute__((visibility("default")))
/* Where the lab installs a node's scenario next to the library (see README.md). */
#ifndef FAKE_NVML_DEFAULT_SCENARIO
#define FAKE_NVML_DEFAULT_SCENARIO "/etc/fake-nvml/scenario.json"
#endif

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    NVML_ERROR_UNKNOWN = 999,
};

static const struct {
    const char *name;
    nvmlReturn_t code;
    const char *text;
} errors[] = {
    {"SUCCESS", NVML_SUCCESS, "Success"},
    {"UNINITIALIZED", NVML_ERROR_UNINITIALIZED, "Uninitialized"},
    {"INVALID_ARGUMENT", NVML_ERROR_INVALID_ARGUMENT, "Invalid Argument"},
    {"NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED, "Not Supported"},
    {"NO_PERMISSION", NVML_ERROR_NO_PERMISSION, "Insufficient Permissions"},
    {"NOT_FOUND", NVML_ERROR_NOT_FOUND, "Not Found"},
    {"INSUFFICIENT_SIZE", NVML_ERROR_INSUFFICIENT_SIZE, "Insufficient Size"},
    {"DRIVER_NOT_LOADED", NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"},
    {"LIBRARY_NOT_FOUND", NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"},
    {"FUNCTION_NOT_FOUND", NVML_ERROR_FUNCTION_NOT_FOUND, "Function Not Found"},
    {"GPU_IS_LOST", NVML_ERROR_GPU_IS_LOST, "GPU is lost"},
    {"LIB_RM_VERSION_MISMATCH", NVML_ERROR_LIB_RM_VERSION_MISMATCH, "RM has detected an NVML/RM version mismatch."},
    {"UNKNOWN", NVML_ERROR_UNKNOWN, "Unknown Error"},
};

/* The layouts pynvml declares for these structs. */
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

struct fake_device {
    const struct json *node;     /* the scenario object describing it */
    int is_mig;
    unsigned int index;
    struct fake_device *mig;     /* GPU: its MIG devices */
    size_t mig_count;
};
typedef struct fake_device *nvmlDevice_t;

static struct json *scenario;
static struct fake_device *gpus;
static size_t gpu_count;
static int init_refcount;
static int gpu_is_lost(const struct fake_device *dev); /* the health block, at the end of this file */

static void log_call(const char *name)
{
    const char *path = getenv("FAKE_NVML_CALL_LOG");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "%s\n", name);
    fclose(f);
}

/* A call the scenario lists in "hang" never returns, as a call into a wedged driver
 * (a GPU fallen off the bus) does.  Simulated by sleeping: unlike a process stuck in
 * the kernel, this one still dies of SIGKILL. */
static void hang_if_listed(const char *name)
{
    if (scenario && json_array_has(scenario, "hang", name))
        for (;;)
            pause();
}

/* Every entry point but init and nvmlErrorString starts here. */
static nvmlReturn_t enter(const char *name)
{
    log_call(name);
    hang_if_listed(name);
    if (scenario && json_array_has(scenario, "function_not_found", name))
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    return init_refcount > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

#define ENTER()                                   \
    do {                                          \
        nvmlReturn_t entered_ = enter(__func__);  \
        if (entered_ != NVML_SUCCESS)             \
            return entered_;                      \
    } while (0)

static nvmlReturn_t error_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (strcmp(errors[i].name, name) == 0)
            return errors[i].code;
    return NVML_ERROR_UNKNOWN;
}

static void free_scenario(void)
{
    for (size_t i = 0; i < gpu_count; i++)
        free(gpus[i].mig);
    free(gpus);
    gpus = NULL;
    gpu_count = 0;
    json_free(scenario);
    scenario = NULL;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

static nvmlReturn_t load_scenario(void)
{
    /* Simulation: a lab node container has no environment of ours in every process that loads
       NVML (Ansible modules, nvidia-smi), so the scenario installed with the library is the
       default; FAKE_NVML_SCENARIO, when set, wins. */
    const char *path = getenv("FAKE_NVML_SCENARIO");
    if (!path || !*path)
        path = FAKE_NVML_DEFAULT_SCENARIO;
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "fake NVML: FAKE_NVML_SCENARIO is not set and %s is not readable\n", path);
        return NVML_ERROR_UNKNOWN;
    }
    char *text = read_file(path);
    if (!text) {
        fprintf(stderr, "fake NVML: cannot read scenario %s\n", path);
        return NVML_ERROR_UNKNOWN;
    }
    char err[256];
    scenario = json_parse(text, err, sizeof(err));
    free(text);
    if (!scenario || scenario->type != JSON_OBJECT) {
        fprintf(stderr, "fake NVML: scenario %s is not a JSON object: %s\n", path, scenario ? "" : err);
        json_free(scenario);
        scenario = NULL;
        return NVML_ERROR_UNKNOWN;
    }
    const struct json *devices = json_get(scenario, "devices");
    gpu_count = devices && devices->type == JSON_ARRAY ? devices->count : 0;
    gpus = calloc(gpu_count ? gpu_count : 1, sizeof(*gpus));
    for (size_t i = 0; gpus && i < gpu_count; i++) {
        gpus[i].node = json_at(devices, i);
        gpus[i].index = (unsigned int)i;
        const struct json *mig_devices = json_get(json_get(gpus[i].node, "mig"), "devices");
        gpus[i].mig_count = mig_devices && mig_devices->type == JSON_ARRAY ? mig_devices->count : 0;
        gpus[i].mig = calloc(gpus[i].mig_count ? gpus[i].mig_count : 1, sizeof(struct fake_device));
        for (size_t m = 0; gpus[i].mig && m < gpus[i].mig_count; m++) {
            gpus[i].mig[m].node = json_at(mig_devices, m);
            gpus[i].mig[m].is_mig = 1;
            gpus[i].mig[m].index = (unsigned int)m;
        }
    }
    return NVML_SUCCESS;
}

static nvmlReturn_t init(const char *name)
{
    log_call(name);
    if (init_refcount > 0) {
        init_refcount++;
        return NVML_SUCCESS;
    }
    nvmlReturn_t ret = load_scenario();
    if (ret != NVML_SUCCESS)
        return ret;
    hang_if_listed(name);
    const char *init_error = json_string(scenario, "init_error");
    if (init_error) {
        ret = error_by_name(init_error);
        free_scenario();
        return ret;
    }
    init_refcount = 1;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    return init(__func__);
}

EXPORT nvmlReturn_t nvmlInit_v2(void)
{
    return init(__func__);
}

EXPORT nvmlReturn_t nvmlShutdown(void)
{
    ENTER();
    if (--init_refcount == 0)
        free_scenario();
    return NVML_SUCCESS;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].code == result)
            return errors[i].text;
    return "Unknown Error";
}

/* Copies a string into a caller's buffer the way NVML does. */
static nvmlReturn_t put_string(const char *value, char *out, unsigned int length)
{
    if (!value)
        return NVML_ERROR_NOT_SUPPORTED;
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, value, strlen(value) + 1);
    return NVML_SUCCESS;
}

/* Reads an unsigned number under key of a device; absent means the device does not support it. */
static nvmlReturn_t put_uint(const struct json *node, const char *key, unsigned int *out)
{
    const struct json *v = json_get(node, key);
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!v || (v->type != JSON_NUMBER && v->type != JSON_BOOL))
        return NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned int)v->number;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    ENTER();
    return put_string(json_string(scenario, "driver_version"), version, length);
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    ENTER();
    return put_string(json_string(scenario, "nvml_version"), version, length);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version)
{
    ENTER();
    return put_uint(scenario, "cuda_driver_version", (unsigned int *)version);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version)
{
    ENTER();
    return put_uint(scenario, "cuda_driver_version", (unsigned int *)version);
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    ENTER();
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)gpu_count;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    ENTER();
    if (!device || index >= gpu_count)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (gpu_is_lost(&gpus[index])) /* nvidia-smi: "Unable to determine the device handle for GPU ...: GPU is lost" */
        return NVML_ERROR_GPU_IS_LOST;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

/* A handle this library gave out (GPU or MIG device), else NULL. */
static const struct fake_device *check_handle(nvmlDevice_t device)
{
    for (size_t i = 0; i < gpu_count; i++) {
        if (device == &gpus[i])
            return device;
        if (device >= gpus[i].mig && device < gpus[i].mig + gpus[i].mig_count)
            return device;
    }
    return NULL;
}

#define DEVICE(handle)                              \
    const struct fake_device *dev = check_handle(handle); \
    if (!dev)                                        \
        return NVML_ERROR_INVALID_ARGUMENT;          \
    if (gpu_is_lost(dev))                            \
        return NVML_ERROR_GPU_IS_LOST

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    ENTER();
    DEVICE(device);
    return put_string(json_string(dev->node, "uuid"), uuid, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    ENTER();
    DEVICE(device);
    return put_string(json_string(dev->node, "name"), name, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetBrand(nvmlDevice_t device, int *brand)
{
    ENTER();
    DEVICE(device);
    return put_uint(dev->node, "brand", (unsigned int *)brand);
}

EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned int *arch)
{
    ENTER();
    DEVICE(device);
    return put_uint(dev->node, "architecture", arch);
}

EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
    ENTER();
    DEVICE(device);
    const struct json *cc = json_get(dev->node, "compute_capability");
    if (!major || !minor)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!cc || cc->type != JSON_ARRAY || cc->count != 2)
        return NVML_ERROR_NOT_SUPPORTED;
    *major = (int)cc->items[0]->number;
    *minor = (int)cc->items[1]->number;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    ENTER();
    DEVICE(device);
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    double total = json_number(dev->node, "memory_total_mib", -1);
    double used = json_number(dev->node, "memory_used_mib", 0);
    if (total < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    memory->total = (unsigned long long)total * 1048576ULL;
    memory->used = (unsigned long long)used * 1048576ULL;
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending)
{
    ENTER();
    DEVICE(device);
    const struct json *mig = json_get(dev->node, "mig");
    if (!current || !pending)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (dev->is_mig || !mig)
        return NVML_ERROR_NOT_SUPPORTED;
    *current = (unsigned int)json_number(mig, "current", 0);
    *pending = (unsigned int)json_number(mig, "pending", 0);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)
{
    ENTER();
    DEVICE(device);
    const struct json *mig = json_get(dev->node, "mig");
    if (dev->is_mig || !mig)
        return NVML_ERROR_NOT_SUPPORTED;
    return put_uint(mig, "max_devices", count);
}

EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *mig_device)
{
    ENTER();
    DEVICE(device);
    const struct json *mig = json_get(dev->node, "mig");
    if (!mig_device)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (dev->is_mig || !mig)
        return NVML_ERROR_NOT_SUPPORTED;
    if (index >= (unsigned int)json_number(mig, "max_devices", 0))
        return NVML_ERROR_INVALID_ARGUMENT;
    /* Real NVML answers NOT_FOUND for slots without a MIG device. */
    if (index >= dev->mig_count)
        return NVML_ERROR_NOT_FOUND;
    *mig_device = &dev->mig[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id)
{
    ENTER();
    DEVICE(device);
    if (!dev->is_mig)
        return NVML_ERROR_INVALID_ARGUMENT;
    return put_uint(dev->node, "gpu_instance_id", id);
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)
{
    ENTER();
    DEVICE(device);
    if (!dev->is_mig)
        return NVML_ERROR_INVALID_ARGUMENT;
    return put_uint(dev->node, "compute_instance_id", id);
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, int *mode)
{
    ENTER();
    DEVICE(device);
    return put_uint(dev->node, "compute_mode", (unsigned int *)mode);
}

EXPORT nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, int *mode)
{
    ENTER();
    DEVICE(device);
    return put_uint(dev->node, "persistence_mode", (unsigned int *)mode);
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    ENTER();
    DEVICE(device);
    const char *bus_id = json_string(dev->node, "pci_bus_id");
    const char *device_id = json_string(dev->node, "pci_device_id");
    const char *subsystem_id = json_string(dev->node, "pci_subsystem_id");
    if (!pci)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!bus_id || strlen(bus_id) >= sizeof(pci->busId))
        return NVML_ERROR_NOT_SUPPORTED;
    memset(pci, 0, sizeof(*pci));
    unsigned int domain = 0, bus = 0, slot = 0, function = 0;
    if (sscanf(bus_id, "%x:%x:%x.%x", &domain, &bus, &slot, &function) != 4)
        return NVML_ERROR_UNKNOWN;
    pci->domain = domain;
    pci->bus = bus;
    pci->device = slot;
    snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.%X", domain & 0xFFFF, bus, slot, function);
    memcpy(pci->busId, bus_id, strlen(bus_id) + 1);
    pci->pciDeviceId = device_id ? (unsigned int)strtoul(device_id, NULL, 16) : 0;
    pci->pciSubSystemId = subsystem_id ? (unsigned int)strtoul(subsystem_id, NULL, 16) : 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit)
{
    ENTER();
    DEVICE(device);
    return put_uint(dev->node, "power_limit_mw", limit);
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp)
{
    ENTER();
    DEVICE(device);
    if (sensor != 0) /* NVML_TEMPERATURE_GPU is the only sensor */
        return NVML_ERROR_INVALID_ARGUMENT;
    return put_uint(dev->node, "temperature_c", temp);
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
    ENTER();
    DEVICE(device);
    const struct json *u = json_get(dev->node, "utilization");
    if (!utilization)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!u || u->type != JSON_OBJECT)
        return NVML_ERROR_NOT_SUPPORTED;
    utilization->gpu = (unsigned int)json_number(u, "gpu", 0);
    utilization->memory = (unsigned int)json_number(u, "memory", 0);
    return NVML_SUCCESS;
}

/* ---- GPU health: ECC, page retirement, row remapping, clock event reasons, a GPU lost from the bus ----
 * A device's "health" object (README.md); a key it leaves out answers NOT_SUPPORTED, as a GPU without the
 * feature does (ECC on GeForce, row remapping before Ampere, page retirement on Ampere and later).
 * Enumerations and bit masks as nvml.h defines them (and pynvml repeats): nvmlMemoryErrorType_t
 * CORRECTED 0 / UNCORRECTED 1, nvmlEccCounterType_t VOLATILE 0 / AGGREGATE 1, nvmlPageRetirementCause_t
 * MULTIPLE_SINGLE_BIT_ECC_ERRORS 0 / DOUBLE_BIT_ECC_ERROR 1; nvmlClocksEventReason* bits are the scenario's number. */

static const struct json *health_of(const struct fake_device *dev)
{
    return dev->is_mig ? NULL : json_get(dev->node, "health");
}

/* "gpu_is_lost": true - every call on the GPU answers NVML_ERROR_GPU_IS_LOST, as one fallen off the bus does
 * (Xid 79; nvml.h: "NVML_ERROR_GPU_IS_LOST: The GPU has fallen off the bus or has otherwise become inaccessible"). */
static int gpu_is_lost(const struct fake_device *dev)
{
    return json_number(health_of(dev), "gpu_is_lost", 0) != 0;
}

EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int error_type, int counter_type,
                                                unsigned long long *count)
{
    ENTER();
    DEVICE(device);
    static const char *const types[] = {"corrected", "uncorrected"};
    static const char *const counters[] = {"volatile", "aggregate"};
    if (!count || error_type < 0 || error_type > 1 || counter_type < 0 || counter_type > 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    const struct json *errors_of_type = json_get(json_get(health_of(dev), "ecc_errors"), types[error_type]);
    double value = json_number(errors_of_type, counters[counter_type], -1);
    if (value < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *count = (unsigned long long)value;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, int *is_pending)
{
    ENTER();
    DEVICE(device);
    return put_uint(json_get(health_of(dev), "retired_pages"), "pending", (unsigned int *)is_pending);
}

/* Both versions: *page_count in is the buffers' size, out the number of pages; too small a buffer (0 asks for
 * the size) answers INSUFFICIENT_SIZE with the number needed, as nvml.h documents. Addresses are made up. */
static nvmlReturn_t retired_pages(nvmlDevice_t device, int cause, unsigned int *page_count,
                                  unsigned long long *addresses, unsigned long long *timestamps)
{
    DEVICE(device);
    static const char *const causes[] = {"single_bit_ecc", "double_bit_ecc"};
    if (!page_count || cause < 0 || cause > 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    const struct json *pages = json_get(health_of(dev), "retired_pages");
    double count = json_number(pages, causes[cause], -1);
    if (count < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned int room = *page_count;
    *page_count = (unsigned int)count;
    if (room < (unsigned int)count || (count > 0 && !addresses))
        return NVML_ERROR_INSUFFICIENT_SIZE;
    for (unsigned int i = 0; i < (unsigned int)count; i++) {
        addresses[i] = 0x1000ULL * (i + 1) + (unsigned long long)cause;
        if (timestamps)
            timestamps[i] = 1700000000ULL + i;
    }
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, int cause, unsigned int *page_count,
                                              unsigned long long *addresses)
{
    ENTER();
    return retired_pages(device, cause, page_count, addresses, NULL);
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages_v2(nvmlDevice_t device, int cause, unsigned int *page_count,
                                                 unsigned long long *addresses, unsigned long long *timestamps)
{
    ENTER();
    return retired_pages(device, cause, page_count, addresses, timestamps);
}

EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *correctable, unsigned int *uncorrectable,
                                              unsigned int *is_pending, unsigned int *failure_occurred)
{
    ENTER();
    DEVICE(device);
    const struct json *rows = json_get(health_of(dev), "remapped_rows");
    if (!correctable || !uncorrectable || !is_pending || !failure_occurred)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!rows || rows->type != JSON_OBJECT)
        return NVML_ERROR_NOT_SUPPORTED;
    *correctable = (unsigned int)json_number(rows, "correctable", 0);
    *uncorrectable = (unsigned int)json_number(rows, "uncorrectable", 0);
    *is_pending = (unsigned int)json_number(rows, "pending", 0);
    *failure_occurred = (unsigned int)json_number(rows, "failure", 0);
    return NVML_SUCCESS;
}

static nvmlReturn_t clocks_event_reasons(nvmlDevice_t device, unsigned long long *reasons)
{
    DEVICE(device);
    if (!reasons)
        return NVML_ERROR_INVALID_ARGUMENT;
    double mask = json_number(health_of(dev), "clocks_event_reasons", -1);
    if (mask < 0)
        return NVML_ERROR_NOT_SUPPORTED;
    *reasons = (unsigned long long)mask;
    return NVML_SUCCESS;
}

/* R535 renamed nvmlDeviceGetCurrentClocksThrottleReasons to ...ClocksEventReasons; drivers answer both. */
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons)
{
    ENTER();
    return clocks_event_reasons(device, reasons);
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons)
{
    ENTER();
    return clocks_event_reasons(device, reasons);
}
