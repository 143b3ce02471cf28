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
/* Where the MIG state (mode, instances) of the default scenario's GPUs persists (see README.md). */
#ifndef FAKE_NVML_DEFAULT_STATE
#define FAKE_NVML_DEFAULT_STATE "/etc/fake-nvml/state.json"
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
    NVML_ERROR_RESET_REQUIRED = 16,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    NVML_ERROR_IN_USE = 19,
    NVML_ERROR_INSUFFICIENT_RESOURCES = 23,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
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
    {"RESET_REQUIRED", NVML_ERROR_RESET_REQUIRED, "GPU requires restart"},
    {"LIB_RM_VERSION_MISMATCH", NVML_ERROR_LIB_RM_VERSION_MISMATCH, "RM has detected an NVML/RM version mismatch."},
    {"IN_USE", NVML_ERROR_IN_USE, "GPU is currently in use"},
    {"INSUFFICIENT_RESOURCES", NVML_ERROR_INSUFFICIENT_RESOURCES, "Insufficient resources available"},
    {"ARGUMENT_VERSION_MISMATCH", NVML_ERROR_ARGUMENT_VERSION_MISMATCH, "Argument version mismatch"},
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

struct fake_gpu_instance;
struct gi_profile;

struct fake_device {
    const struct json *node;     /* the scenario object describing it (GPU) */
    int is_mig;
    unsigned int index;
    struct fake_device *mig;     /* GPU: its MIG devices (one per compute instance, rebuilt from the MIG state) */
    size_t mig_count;
    /* GPU: MIG state (see "MIG management" below) */
    const struct mig_product *product; /* NULL: no MIG profiles known for this GPU */
    int mig_supported;                 /* the scenario has a "mig" key */
    unsigned int mig_current, mig_pending;
    struct fake_gpu_instance *gpu_instances; /* indexed by GPU instance id */
    struct gi_profile *scenario_profiles;    /* profiles of scenario MIG devices this library has no table for */
    size_t scenario_profile_count;
    /* MIG device: what it answers */
    struct fake_device *parent;
    char mig_name[128], mig_uuid[96];
    unsigned long long mig_memory_total_mib, mig_memory_used_mib;
    unsigned int gpu_instance_id, compute_instance_id;
};
typedef struct fake_device *nvmlDevice_t;

static struct json *scenario;
static struct fake_device *gpus;
static size_t gpu_count;
static int init_refcount;
static const char *scenario_path;
static int gpu_is_lost(const struct fake_device *dev); /* the health block, at the end of this file */

static void mig_load(void);
static void mig_free(struct fake_device *gpu);

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
        mig_free(&gpus[i]);
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
    scenario_path = path;
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
    }
    if (gpus)
        mig_load();
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
    if (dev->is_mig)
        return put_string(dev->mig_uuid, uuid, length);
    return put_string(json_string(dev->node, "uuid"), uuid, length);
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    ENTER();
    DEVICE(device);
    if (dev->is_mig)
        return put_string(dev->mig_name, name, length);
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
    if (dev->is_mig) {
        memory->total = dev->mig_memory_total_mib * 1048576ULL;
        memory->used = dev->mig_memory_used_mib * 1048576ULL;
        memory->free = memory->total - memory->used;
        return NVML_SUCCESS;
    }
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
    *current = dev->mig_current;
    *pending = dev->mig_pending;
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
    if (!dev->is_mig || !id)
        return NVML_ERROR_INVALID_ARGUMENT;
    *id = dev->gpu_instance_id;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)
{
    ENTER();
    DEVICE(device);
    if (!dev->is_mig || !id)
        return NVML_ERROR_INVALID_ARGUMENT;
    *id = dev->compute_instance_id;
    return NVML_SUCCESS;
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

/* ---------------------------------------------------------------------------------------------
 * MIG management: MIG mode (pending/current), GPU instances and compute instances.
 *
 * The profiles, their slices, memory, engines, instance counts and placements are those NVIDIA's
 * MIG user guide publishes for each product ("Supported MIG Profiles",
 * https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html, and the
 * `nvidia-smi mig -lgip` / `-lgipp` listings in its "Getting Started" section). A GPU instance
 * occupies `mem_slices` of the GPU's 8 memory slices from its placement's start and `slices` of
 * its 7 compute slices. Its id is the one the hardware gives that placement (nvidia-smi shows
 * 7g -> 0; the two 4-slice halves -> 1, 2; the 2-slice quarters -> 3..6; the 1-slice eighths -> 7..14).
 *
 * The state persists in a JSON file (FAKE_NVML_STATE, else FAKE_NVML_DEFAULT_STATE for the
 * default scenario, else only in this process) so that every process on a simulated node sees
 * the same MIG devices; the scenario's "mig" key is the state before the first change.
 * --------------------------------------------------------------------------------------------- */

#define MAX_GPU_INSTANCES 15   /* GPU instance ids 0..14 */
#define MAX_COMPUTE_INSTANCES 8
#define MAX_MIG_DEVICES 64
#define PROFILE_NAME_SIZE 96   /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */
#define GPU_INSTANCE_PROFILE_COUNT 0x12
#define nvmlGpuInstanceProfileInfo_v2 0x02000098u
#define nvmlComputeInstanceProfileInfo_v2 0x02000088u

typedef struct {
    unsigned int start, size;
} nvmlGpuInstancePlacement_t;
typedef nvmlGpuInstancePlacement_t nvmlComputeInstancePlacement_t;

typedef struct {
    unsigned int id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount, copyEngineCount, decoderCount,
        encoderCount, jpegCount, ofaCount;
    unsigned long long memorySizeMB;
} nvmlGpuInstanceProfileInfo_t;

typedef struct {
    unsigned int version, id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount, copyEngineCount,
        decoderCount, encoderCount, jpegCount, ofaCount;
    unsigned long long memorySizeMB;
    char name[PROFILE_NAME_SIZE];
} nvmlGpuInstanceProfileInfo_v2_t;

typedef struct {
    unsigned int id, sliceCount, instanceCount, multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount,
        sharedEncoderCount, sharedJpegCount, sharedOfaCount;
} nvmlComputeInstanceProfileInfo_t;

typedef struct {
    unsigned int version, id, sliceCount, instanceCount, multiprocessorCount, sharedCopyEngineCount,
        sharedDecoderCount, sharedEncoderCount, sharedJpegCount, sharedOfaCount;
    char name[PROFILE_NAME_SIZE];
} nvmlComputeInstanceProfileInfo_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

struct gi_profile {
    unsigned int index;      /* NVML_GPU_INSTANCE_PROFILE_* (what nvmlDeviceGetGpuInstanceProfileInfo takes) */
    unsigned int id;         /* the profile id nvidia-smi shows and nvmlDeviceCreateGpuInstance takes */
    const char *name;        /* without "MIG " */
    unsigned int slices;     /* compute slices (of 7) */
    unsigned int mem_slices; /* memory slices (of 8) = the placement's size */
    unsigned int instances;  /* at most this many at once */
    unsigned int sms, copy_engines, decoders, encoders, jpegs, ofas;
    unsigned long long memory_mib;
    unsigned int starts;     /* bit n: a placement may start at memory slice n */
};

struct mig_product {
    unsigned int pci_device_id; /* NVML's pciDeviceId: device id << 16 | 0x10DE */
    const struct gi_profile *profiles;
    size_t count;
};

/* NVML_GPU_INSTANCE_PROFILE_1_SLICE = 0, 2_SLICE = 1, 3_SLICE = 2, 4_SLICE = 3, 7_SLICE = 4,
   1_SLICE_REV1 (+me) = 7, 1_SLICE_REV2 (1 compute slice, 2 memory slices) = 9 (nvml.h). */
static const struct gi_profile a100_40gb[] = {
    {0, 19, "1g.5gb", 1, 1, 7, 14, 1, 0, 0, 0, 0, 4864, 0x7f},
    {7, 20, "1g.5gb+me", 1, 1, 1, 14, 1, 1, 0, 1, 1, 4864, 0x7f},
    {9, 15, "1g.10gb", 1, 2, 4, 14, 1, 1, 0, 0, 0, 9856, 0x55},
    {1, 14, "2g.10gb", 2, 2, 3, 28, 2, 1, 0, 0, 0, 9856, 0x15},
    {2, 9, "3g.20gb", 3, 4, 2, 42, 3, 2, 0, 0, 0, 19968, 0x11},
    {3, 5, "4g.20gb", 4, 4, 1, 56, 4, 2, 0, 0, 0, 19968, 0x01},
    {4, 0, "7g.40gb", 7, 8, 1, 98, 7, 5, 0, 1, 1, 40192, 0x01},
};
static const struct gi_profile a100_80gb[] = {
    {0, 19, "1g.10gb", 1, 1, 7, 14, 1, 0, 0, 0, 0, 9728, 0x7f},
    {7, 20, "1g.10gb+me", 1, 1, 1, 14, 1, 1, 0, 1, 1, 9728, 0x7f},
    {9, 15, "1g.20gb", 1, 2, 4, 14, 1, 1, 0, 0, 0, 19968, 0x55},
    {1, 14, "2g.20gb", 2, 2, 3, 28, 2, 1, 0, 0, 0, 19968, 0x15},
    {2, 9, "3g.40gb", 3, 4, 2, 42, 3, 2, 0, 0, 0, 40192, 0x11},
    {3, 5, "4g.40gb", 4, 4, 1, 56, 4, 2, 0, 0, 0, 40192, 0x01},
    {4, 0, "7g.80gb", 7, 8, 1, 98, 7, 5, 0, 1, 1, 80896, 0x01},
};
static const struct gi_profile h100_80gb[] = {
    {0, 19, "1g.10gb", 1, 1, 7, 16, 1, 1, 0, 1, 0, 9984, 0x7f},
    {7, 20, "1g.10gb+me", 1, 1, 1, 16, 1, 1, 0, 1, 1, 9984, 0x7f},
    {9, 15, "1g.20gb", 1, 2, 4, 26, 1, 1, 0, 1, 0, 20096, 0x55},
    {1, 14, "2g.20gb", 2, 2, 3, 32, 2, 2, 0, 2, 0, 20096, 0x15},
    {2, 9, "3g.40gb", 3, 4, 2, 60, 3, 3, 0, 3, 0, 40448, 0x11},
    {3, 5, "4g.40gb", 4, 4, 1, 64, 4, 4, 0, 4, 0, 40448, 0x01},
    {4, 0, "7g.80gb", 7, 8, 1, 132, 8, 7, 0, 7, 1, 80896, 0x01},
};
#define PRODUCT(id, table) {id, table, sizeof(table) / sizeof(table[0])}
static const struct mig_product mig_products[] = {
    PRODUCT(0x20B010DEu, a100_40gb), /* A100-SXM4-40GB */
    PRODUCT(0x20B210DEu, a100_80gb), /* A100-SXM4-80GB */
    PRODUCT(0x233010DEu, h100_80gb), /* H100 80GB HBM3 (SXM5) */
};

/* NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE .. 7_SLICE = 0..4: compute slices of each */
static const unsigned int ci_profile_slices[] = {1, 2, 3, 4, 7};
#define CI_PROFILE_COUNT (sizeof(ci_profile_slices) / sizeof(ci_profile_slices[0]))

struct fake_compute_instance {
    int used;
    unsigned int id, profile; /* NVML_COMPUTE_INSTANCE_PROFILE_* */
    unsigned int start, size; /* compute slices within its GPU instance */
    char uuid[96];
    unsigned long long memory_used_mib;
    struct fake_gpu_instance *gpu_instance;
};
typedef struct fake_compute_instance *nvmlComputeInstance_t;

struct fake_gpu_instance {
    int used;
    unsigned int id;
    const struct gi_profile *profile;
    unsigned int start; /* memory slice */
    struct fake_device *gpu;
    struct fake_compute_instance compute[MAX_COMPUTE_INSTANCES];
};
typedef struct fake_gpu_instance *nvmlGpuInstance_t;

static unsigned long long mig_serial; /* counts created compute instances, for fresh UUIDs */

static const struct gi_profile *profile_by(const struct fake_device *gpu, int by_index, unsigned int value)
{
    for (size_t i = 0; gpu->product && i < gpu->product->count; i++) {
        const struct gi_profile *p = &gpu->product->profiles[i];
        if ((by_index ? p->index : p->id) == value)
            return p;
    }
    for (size_t i = 0; i < gpu->scenario_profile_count; i++) {
        const struct gi_profile *p = &gpu->scenario_profiles[i];
        if ((by_index ? p->index : p->id) == value)
            return p;
    }
    return NULL;
}

static const struct gi_profile *profile_by_name(const struct fake_device *gpu, const char *name)
{
    for (size_t i = 0; name && gpu->product && i < gpu->product->count; i++)
        if (strcmp(gpu->product->profiles[i].name, name) == 0)
            return &gpu->product->profiles[i];
    for (size_t i = 0; name && i < gpu->scenario_profile_count; i++)
        if (strcmp(gpu->scenario_profiles[i].name, name) == 0)
            return &gpu->scenario_profiles[i];
    return NULL;
}

/* A MIG device of a product this library has no table for (or a profile not in it): a profile made from the
   scenario (its name's "<n>g", its memory), so the device is still listed as the scenario describes it. It is not
   offered for creation (nvmlDeviceGetGpuInstanceProfileInfo does not know it). */
static const struct gi_profile *scenario_profile(struct fake_device *gpu, const char *name, const struct json *device)
{
    const struct gi_profile *known = profile_by_name(gpu, name);
    if (known || !name || gpu->scenario_profile_count >= MAX_GPU_INSTANCES)
        return known;
    if (!gpu->scenario_profiles && !(gpu->scenario_profiles = calloc(MAX_GPU_INSTANCES, sizeof(struct gi_profile))))
        return NULL;
    struct gi_profile *p = &gpu->scenario_profiles[gpu->scenario_profile_count];
    unsigned int slices = (unsigned int)strtoul(name, NULL, 10);
    p->index = 1000 + (unsigned int)gpu->scenario_profile_count; /* outside NVML's profile indices */
    p->id = p->index;
    p->name = strdup(name);
    p->slices = slices ? slices : 1;
    p->mem_slices = p->slices >= 7 ? 8 : p->slices > 2 ? 4 : p->slices;
    p->instances = 7;
    p->memory_mib = (unsigned long long)json_number(device, "memory_total_mib", 0);
    p->starts = 0;
    gpu->scenario_profile_count++;
    return p;
}

static unsigned int gpu_instance_id_of(unsigned int size, unsigned int start)
{
    return 8 / size - 1 + start / size;
}

static void placement_of_id(unsigned int id, unsigned int *size, unsigned int *start)
{
    *size = id == 0 ? 8 : id <= 2 ? 4 : id <= 6 ? 2 : 1;
    *start = (id - (8 / *size - 1)) * *size;
}

static unsigned int memory_slices_used(const struct fake_device *gpu, unsigned int *compute_slices)
{
    unsigned int mask = 0, compute = 0;
    for (unsigned int i = 0; i < MAX_GPU_INSTANCES; i++) {
        const struct fake_gpu_instance *gi = &gpu->gpu_instances[i];
        if (!gi->used)
            continue;
        mask |= ((1u << gi->profile->mem_slices) - 1) << gi->start;
        compute += gi->profile->slices;
    }
    if (compute_slices)
        *compute_slices = compute;
    return mask;
}

static unsigned int count_of_profile(const struct fake_device *gpu, const struct gi_profile *p)
{
    unsigned int n = 0;
    for (unsigned int i = 0; i < MAX_GPU_INSTANCES; i++)
        n += gpu->gpu_instances[i].used && gpu->gpu_instances[i].profile == p;
    return n;
}

/* NVML_SUCCESS when a GPU instance of p fits at start now, else why not. */
static nvmlReturn_t fits(const struct fake_device *gpu, const struct gi_profile *p, unsigned int start)
{
    if (start > 7 || !(p->starts & (1u << start)))
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int compute;
    unsigned int used = memory_slices_used(gpu, &compute);
    unsigned int want = ((1u << p->mem_slices) - 1) << start;
    if (used & want || compute + p->slices > 7 || count_of_profile(gpu, p) >= p->instances)
        return NVML_ERROR_INSUFFICIENT_RESOURCES;
    return NVML_SUCCESS;
}

static void make_uuid(const struct fake_device *gpu, unsigned long long serial, char *out, size_t size)
{
    /* FNV-1a over the GPU's UUID and a serial: a fresh, stable-looking UUID per created instance */
    unsigned long long h = 1469598103934665603ULL;
    const char *text = json_string(gpu->node, "uuid");
    for (const char *c = text ? text : ""; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    for (int i = 0; i < 8; i++)
        h = (h ^ ((serial >> (8 * i)) & 0xff)) * 1099511628211ULL;
    unsigned long long g = (h ^ 0x9e3779b97f4a7c15ULL) * 1099511628211ULL;
    snprintf(out, size, "MIG-%08llx-%04llx-5%03llx-%04llx-%012llx", h >> 32, (h >> 16) & 0xffff, h & 0xfff,
             0x8000 | ((g >> 48) & 0x3fff), g & 0xffffffffffffULL);
}

/* The MIG devices (one per compute instance, by GPU instance id then compute instance id), as
   nvmlDeviceGetMigDeviceHandleByIndex lists them. */
static void mig_rebuild(struct fake_device *gpu)
{
    gpu->mig_count = 0;
    if (!gpu->mig)
        return;
    const char *gpu_name = json_string(gpu->node, "name");
    for (unsigned int g = 0; g < MAX_GPU_INSTANCES; g++) {
        struct fake_gpu_instance *gi = &gpu->gpu_instances[g];
        for (unsigned int c = 0; gi->used && c < MAX_COMPUTE_INSTANCES; c++) {
            struct fake_compute_instance *ci = &gi->compute[c];
            if (!ci->used || gpu->mig_count >= MAX_MIG_DEVICES)
                continue;
            struct fake_device *m = &gpu->mig[gpu->mig_count];
            memset(m, 0, sizeof(*m));
            m->is_mig = 1;
            m->index = (unsigned int)gpu->mig_count;
            m->parent = gpu;
            if (ci->size == gi->profile->slices)
                snprintf(m->mig_name, sizeof(m->mig_name), "%s MIG %s", gpu_name ? gpu_name : "", gi->profile->name);
            else
                snprintf(m->mig_name, sizeof(m->mig_name), "%s MIG %uc.%s", gpu_name ? gpu_name : "", ci->size,
                         gi->profile->name);
            memcpy(m->mig_uuid, ci->uuid, sizeof(m->mig_uuid));
            m->mig_memory_total_mib = gi->profile->memory_mib;
            m->mig_memory_used_mib = ci->memory_used_mib;
            m->gpu_instance_id = gi->id;
            m->compute_instance_id = ci->id;
            gpu->mig_count++;
        }
    }
}

static const char *state_path(void)
{
    const char *path = getenv("FAKE_NVML_STATE");
    if (path && *path)
        return path;
    if (scenario_path && strcmp(scenario_path, FAKE_NVML_DEFAULT_SCENARIO) == 0)
        return FAKE_NVML_DEFAULT_STATE;
    return NULL; /* a scenario of a test without a state file: the state lives in this process only */
}

static struct fake_gpu_instance *add_gpu_instance(struct fake_device *gpu, const struct gi_profile *p, unsigned int start)
{
    unsigned int id = gpu_instance_id_of(p->mem_slices, start);
    if (id >= MAX_GPU_INSTANCES)
        return NULL;
    struct fake_gpu_instance *gi = &gpu->gpu_instances[id];
    memset(gi, 0, sizeof(*gi));
    gi->used = 1;
    gi->id = id;
    gi->profile = p;
    gi->start = start;
    gi->gpu = gpu;
    for (unsigned int c = 0; c < MAX_COMPUTE_INSTANCES; c++)
        gi->compute[c].gpu_instance = gi;
    return gi;
}

static unsigned int profile_for_slices(unsigned int slices)
{
    for (unsigned int i = 0; i < CI_PROFILE_COUNT; i++)
        if (ci_profile_slices[i] == slices)
            return i;
    return 0;
}

/* The state before the first change: the scenario's "mig" key. A MIG device's GPU instance id
   gives its placement, its name ("... MIG 3g.20gb") its profile. */
static void mig_initial(struct fake_device *gpu, const struct json *mig)
{
    gpu->mig_current = (unsigned int)json_number(mig, "current", 0);
    gpu->mig_pending = (unsigned int)json_number(mig, "pending", 0);
    const struct json *devices = json_get(mig, "devices");
    for (size_t m = 0; devices && m < devices->count; m++) {
        const struct json *d = json_at(devices, m);
        const char *name = json_string(d, "name");
        const char *suffix = name ? strstr(name, " MIG ") : NULL;
        const struct gi_profile *p = scenario_profile(gpu, suffix ? suffix + 5 : NULL, d);
        unsigned int gi_id = (unsigned int)json_number(d, "gpu_instance_id", 0);
        unsigned int ci_id = (unsigned int)json_number(d, "compute_instance_id", 0);
        if (!p || gi_id >= MAX_GPU_INSTANCES || ci_id >= MAX_COMPUTE_INSTANCES) {
            fprintf(stderr, "fake NVML: scenario MIG device %s has no known profile or ids; left out\n", name ? name : "?");
            continue;
        }
        unsigned int size, start;
        placement_of_id(gi_id, &size, &start);
        struct fake_gpu_instance *gi = &gpu->gpu_instances[gi_id];
        if (!gi->used)
            gi = add_gpu_instance(gpu, p, start);
        struct fake_compute_instance *ci = &gi->compute[ci_id];
        ci->used = 1;
        ci->id = ci_id;
        ci->start = 0;
        ci->size = p->slices;
        ci->profile = profile_for_slices(p->slices);
        ci->memory_used_mib = (unsigned long long)json_number(d, "memory_used_mib", 0);
        const char *uuid = json_string(d, "uuid");
        snprintf(ci->uuid, sizeof(ci->uuid), "%s", uuid ? uuid : "");
    }
}

/* Replaces the initial state of the GPUs the state file names (by UUID). */
static void mig_read_state(void)
{
    const char *path = state_path();
    if (!path || access(path, R_OK) != 0)
        return;
    char *text = read_file(path);
    char err[256];
    struct json *state = text ? json_parse(text, err, sizeof(err)) : NULL;
    free(text);
    if (!state) {
        fprintf(stderr, "fake NVML: MIG state %s is unreadable; the scenario's state is used\n", path);
        return;
    }
    mig_serial = (unsigned long long)json_number(state, "serial", 0);
    const struct json *list = json_get(state, "gpus");
    for (size_t s = 0; list && s < list->count; s++) {
        const struct json *saved = json_at(list, s);
        const char *uuid = json_string(saved, "uuid");
        for (size_t i = 0; uuid && i < gpu_count; i++) {
            struct fake_device *gpu = &gpus[i];
            const char *own = json_string(gpu->node, "uuid");
            if (!gpu->mig_supported || !own || strcmp(own, uuid) != 0)
                continue;
            memset(gpu->gpu_instances, 0, MAX_GPU_INSTANCES * sizeof(*gpu->gpu_instances));
            gpu->mig_current = (unsigned int)json_number(saved, "current", 0);
            gpu->mig_pending = (unsigned int)json_number(saved, "pending", 0);
            const struct json *gis = json_get(saved, "gpu_instances");
            for (size_t g = 0; gis && g < gis->count; g++) {
                const struct json *sg = json_at(gis, g);
                const struct gi_profile *p = profile_by(gpu, 1, (unsigned int)json_number(sg, "profile", 0));
                if (!p)
                    continue;
                struct fake_gpu_instance *gi = add_gpu_instance(gpu, p, (unsigned int)json_number(sg, "start", 0));
                const struct json *cis = json_get(sg, "compute_instances");
                for (size_t c = 0; gi && cis && c < cis->count; c++) {
                    const struct json *sc = json_at(cis, c);
                    unsigned int id = (unsigned int)json_number(sc, "id", 0);
                    if (id >= MAX_COMPUTE_INSTANCES)
                        continue;
                    struct fake_compute_instance *ci = &gi->compute[id];
                    ci->used = 1;
                    ci->id = id;
                    ci->profile = (unsigned int)json_number(sc, "profile", 0);
                    ci->start = (unsigned int)json_number(sc, "start", 0);
                    ci->size = (unsigned int)json_number(sc, "size", 1);
                    ci->memory_used_mib = (unsigned long long)json_number(sc, "memory_used_mib", 0);
                    const char *ci_uuid = json_string(sc, "uuid");
                    snprintf(ci->uuid, sizeof(ci->uuid), "%s", ci_uuid ? ci_uuid : "");
                }
            }
        }
    }
    json_free(state);
}

/* Writes every MIG-capable GPU's state (write to a temporary file, then rename: readers never see half a file). */
static void mig_save(void)
{
    const char *path = state_path();
    if (!path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "fake NVML: cannot write MIG state %s\n", tmp);
        return;
    }
    fprintf(f, "{\"serial\": %llu, \"gpus\": [", mig_serial);
    int first_gpu = 1;
    for (size_t i = 0; i < gpu_count; i++) {
        const struct fake_device *gpu = &gpus[i];
        const char *uuid = json_string(gpu->node, "uuid");
        if (!gpu->mig_supported || !uuid)
            continue;
        fprintf(f, "%s\n  {\"uuid\": \"%s\", \"current\": %u, \"pending\": %u, \"gpu_instances\": [", first_gpu ? "" : ",",
                uuid, gpu->mig_current, gpu->mig_pending);
        first_gpu = 0;
        int first_gi = 1;
        for (unsigned int g = 0; g < MAX_GPU_INSTANCES; g++) {
            const struct fake_gpu_instance *gi = &gpu->gpu_instances[g];
            if (!gi->used)
                continue;
            fprintf(f, "%s\n    {\"id\": %u, \"profile\": %u, \"name\": \"%s\", \"start\": %u, \"compute_instances\": [",
                    first_gi ? "" : ",", gi->id, gi->profile->index, gi->profile->name, gi->start);
            first_gi = 0;
            int first_ci = 1;
            for (unsigned int c = 0; c < MAX_COMPUTE_INSTANCES; c++) {
                const struct fake_compute_instance *ci = &gi->compute[c];
                if (!ci->used)
                    continue;
                fprintf(f,
                        "%s{\"id\": %u, \"profile\": %u, \"start\": %u, \"size\": %u, \"uuid\": \"%s\", "
                        "\"memory_used_mib\": %llu}",
                        first_ci ? "" : ", ", ci->id, ci->profile, ci->start, ci->size, ci->uuid, ci->memory_used_mib);
                first_ci = 0;
            }
            fprintf(f, "]}");
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n]}\n");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "fake NVML: cannot write MIG state %s\n", path);
        unlink(tmp);
    }
}

static void mig_load(void)
{
    mig_serial = 0;
    for (size_t i = 0; i < gpu_count; i++) {
        struct fake_device *gpu = &gpus[i];
        const struct json *mig = json_get(gpu->node, "mig");
        const char *device_id = json_string(gpu->node, "pci_device_id");
        unsigned int pci_device_id = device_id ? (unsigned int)strtoul(device_id, NULL, 16) : 0;
        gpu->mig_supported = mig != NULL;
        for (size_t p = 0; mig && p < sizeof(mig_products) / sizeof(mig_products[0]); p++)
            if (mig_products[p].pci_device_id == pci_device_id)
                gpu->product = &mig_products[p];
        gpu->gpu_instances = calloc(MAX_GPU_INSTANCES, sizeof(*gpu->gpu_instances));
        gpu->mig = calloc(MAX_MIG_DEVICES, sizeof(struct fake_device));
        if (mig && gpu->gpu_instances)
            mig_initial(gpu, mig);
    }
    mig_read_state();
    for (size_t i = 0; i < gpu_count; i++)
        mig_rebuild(&gpus[i]);
}

static void mig_free(struct fake_device *gpu)
{
    for (size_t i = 0; i < gpu->scenario_profile_count; i++)
        free((char *)gpu->scenario_profiles[i].name);
    free(gpu->scenario_profiles);
    gpu->scenario_profiles = NULL;
    gpu->scenario_profile_count = 0;
    free(gpu->mig);
    free(gpu->gpu_instances);
    gpu->mig = NULL;
    gpu->gpu_instances = NULL;
    gpu->mig_count = 0;
}

/* The GPU behind a handle that must be a full GPU with MIG support. */
#define MIG_GPU(handle)                                                   \
    DEVICE(handle);                                                       \
    struct fake_device *gpu = (struct fake_device *)dev;                  \
    if (gpu->is_mig || !gpu->mig_supported || !gpu->gpu_instances)       \
        return NVML_ERROR_NOT_SUPPORTED

static struct fake_gpu_instance *check_gpu_instance(nvmlGpuInstance_t handle)
{
    for (size_t i = 0; handle && i < gpu_count; i++)
        if (gpus[i].gpu_instances && handle >= gpus[i].gpu_instances &&
            handle < gpus[i].gpu_instances + MAX_GPU_INSTANCES && handle->used)
            return handle;
    return NULL;
}

static struct fake_compute_instance *check_compute_instance(nvmlComputeInstance_t handle)
{
    for (size_t i = 0; handle && i < gpu_count; i++)
        for (unsigned int g = 0; gpus[i].gpu_instances && g < MAX_GPU_INSTANCES; g++) {
            struct fake_gpu_instance *gi = &gpus[i].gpu_instances[g];
            if (gi->used && handle >= gi->compute && handle < gi->compute + MAX_COMPUTE_INSTANCES && handle->used)
                return handle;
        }
    return NULL;
}

/* Compute processes the scenario lists for a GPU ("processes": [{pid, used_memory_mib, gpu_instance_id,
   compute_instance_id}]); for a MIG device those in its instances. */
static size_t processes_of(const struct fake_device *dev, nvmlProcessInfo_v2_t *out, size_t room)
{
    const struct fake_device *gpu = dev->is_mig ? dev->parent : dev;
    const struct json *list = json_get(gpu->node, "processes");
    size_t n = 0;
    for (size_t i = 0; list && i < list->count; i++) {
        const struct json *p = json_at(list, i);
        unsigned int gi = (unsigned int)json_number(p, "gpu_instance_id", 0xFFFFFFFF);
        unsigned int ci = (unsigned int)json_number(p, "compute_instance_id", 0xFFFFFFFF);
        if (dev->is_mig && (gi != dev->gpu_instance_id || ci != dev->compute_instance_id))
            continue;
        if (out && n < room) {
            out[n].pid = (unsigned int)json_number(p, "pid", 0);
            out[n].usedGpuMemory = (unsigned long long)json_number(p, "used_memory_mib", 0) * 1048576ULL;
            out[n].gpuInstanceId = gi;
            out[n].computeInstanceId = ci;
        }
        n++;
    }
    return n;
}

static int in_use_by(const struct fake_device *gpu, unsigned int gi_id, unsigned int ci_id, int any_ci)
{
    const struct json *list = json_get(gpu->node, "processes");
    for (size_t i = 0; list && i < list->count; i++) {
        const struct json *p = json_at(list, i);
        if ((unsigned int)json_number(p, "gpu_instance_id", 0xFFFFFFFF) == gi_id &&
            (any_ci || (unsigned int)json_number(p, "compute_instance_id", 0xFFFFFFFF) == ci_id))
            return 1;
    }
    return 0;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_v2_t *infos)
{
    ENTER();
    DEVICE(device);
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = processes_of(dev, NULL, 0);
    if (n > *count || (n > 0 && !infos)) {
        *count = (unsigned int)n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    *count = (unsigned int)processes_of(dev, infos, *count);
    return NVML_SUCCESS;
}

/* Sets the pending mode; it becomes current at once when the GPU can be reset now (bare metal,
   no process on it), else activationStatus says why not: IN_USE (compute processes, or GPU
   instances left when disabling) or RESET_REQUIRED (the scenario's mig.activation
   "reset_required", as a GPU passed through to a VM, whose reset needs a reboot). */
EXPORT nvmlReturn_t nvmlDeviceSetMigMode(nvmlDevice_t device, unsigned int mode, nvmlReturn_t *activationStatus)
{
    ENTER();
    MIG_GPU(device);
    if (mode > 1 || !activationStatus)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!gpu->product)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned int compute;
    if (processes_of(gpu, NULL, 0) > 0 || (mode == 0 && memory_slices_used(gpu, &compute) != 0)) {
        *activationStatus = NVML_ERROR_IN_USE;
        return NVML_SUCCESS;
    }
    gpu->mig_pending = mode;
    const char *activation = json_string(json_get(gpu->node, "mig"), "activation");
    if (activation && strcmp(activation, "reset_required") == 0 && gpu->mig_current != mode) {
        *activationStatus = NVML_ERROR_RESET_REQUIRED;
    } else {
        gpu->mig_current = mode;
        *activationStatus = NVML_SUCCESS;
    }
    mig_save();
    return NVML_SUCCESS;
}

static void fill_gi_profile(const struct gi_profile *p, nvmlGpuInstanceProfileInfo_t *info)
{
    info->id = p->id;
    info->isP2pSupported = 0;
    info->sliceCount = p->slices;
    info->instanceCount = p->instances;
    info->multiprocessorCount = p->sms;
    info->copyEngineCount = p->copy_engines;
    info->decoderCount = p->decoders;
    info->encoderCount = p->encoders;
    info->jpegCount = p->jpegs;
    info->ofaCount = p->ofas;
    info->memorySizeMB = p->memory_mib;
}

static nvmlReturn_t gi_profile_info(nvmlDevice_t device, unsigned int profile, const struct gi_profile **out)
{
    MIG_GPU(device);
    if (profile >= GPU_INSTANCE_PROFILE_COUNT)
        return NVML_ERROR_INVALID_ARGUMENT;
    *out = profile_by(gpu, 1, profile);
    return *out ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfo(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_t *info)
{
    ENTER();
    const struct gi_profile *p = NULL;
    if (!info)
        return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t ret = gi_profile_info(device, profile, &p);
    if (ret == NVML_SUCCESS)
        fill_gi_profile(p, info);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceProfileInfoV(nvmlDevice_t device, unsigned int profile, nvmlGpuInstanceProfileInfo_v2_t *info)
{
    ENTER();
    const struct gi_profile *p = NULL;
    if (!info)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (info->version != nvmlGpuInstanceProfileInfo_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    nvmlReturn_t ret = gi_profile_info(device, profile, &p);
    if (ret != NVML_SUCCESS)
        return ret;
    nvmlGpuInstanceProfileInfo_t v1;
    fill_gi_profile(p, &v1);
    info->id = v1.id;
    info->isP2pSupported = v1.isP2pSupported;
    info->sliceCount = v1.sliceCount;
    info->instanceCount = v1.instanceCount;
    info->multiprocessorCount = v1.multiprocessorCount;
    info->copyEngineCount = v1.copyEngineCount;
    info->decoderCount = v1.decoderCount;
    info->encoderCount = v1.encoderCount;
    info->jpegCount = v1.jpegCount;
    info->ofaCount = v1.ofaCount;
    info->memorySizeMB = v1.memorySizeMB;
    snprintf(info->name, sizeof(info->name), "MIG %s", p->name);
    return NVML_SUCCESS;
}

/* All placements of a profile, whatever the MIG mode and the instances that exist (nvml.h). */
EXPORT nvmlReturn_t nvmlDeviceGetGpuInstancePossiblePlacements_v2(nvmlDevice_t device, unsigned int profileId,
                                                                  nvmlGpuInstancePlacement_t *placements, unsigned int *count)
{
    ENTER();
    MIG_GPU(device);
    const struct gi_profile *p = profile_by(gpu, 0, profileId);
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!p)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned int n = 0;
    for (unsigned int start = 0; start < 8; start++)
        n += (p->starts >> start) & 1;
    if (!placements) {
        *count = n;
        return NVML_SUCCESS;
    }
    if (*count < n) {
        *count = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    n = 0;
    for (unsigned int start = 0; start < 8; start++)
        if (p->starts & (1u << start)) {
            placements[n].start = start;
            placements[n].size = p->mem_slices;
            n++;
        }
    *count = n;
    return NVML_SUCCESS;
}

#define MIG_ENABLED()                       \
    do {                                    \
        if (gpu->mig_current != 1)          \
            return NVML_ERROR_NOT_SUPPORTED; \
    } while (0)

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceRemainingCapacity(nvmlDevice_t device, unsigned int profileId, unsigned int *count)
{
    ENTER();
    MIG_GPU(device);
    const struct gi_profile *p = profile_by(gpu, 0, profileId);
    if (!count)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!p)
        return NVML_ERROR_NOT_SUPPORTED;
    MIG_ENABLED();
    /* how many more could be created one after the other, each at its lowest free placement */
    unsigned int compute;
    unsigned int used = memory_slices_used(gpu, &compute);
    unsigned int n = 0, existing = count_of_profile(gpu, p);
    for (unsigned int start = 0; start < 8; start++) {
        unsigned int want = ((1u << p->mem_slices) - 1) << start;
        if (!(p->starts & (1u << start)) || (used & want) || existing + n >= p->instances || compute + p->slices > 7)
            continue;
        used |= want;
        compute += p->slices;
        n++;
    }
    *count = n;
    return NVML_SUCCESS;
}

static nvmlReturn_t create_gpu_instance(struct fake_device *gpu, const struct gi_profile *p, unsigned int start,
                                        nvmlGpuInstance_t *out)
{
    nvmlReturn_t ret = fits(gpu, p, start);
    if (ret != NVML_SUCCESS)
        return ret;
    *out = add_gpu_instance(gpu, p, start);
    if (!*out)
        return NVML_ERROR_UNKNOWN;
    mig_save();
    return NVML_SUCCESS;
}

/* Without a placement: real NVML picks one; this library takes the lowest free one. */
EXPORT nvmlReturn_t nvmlDeviceCreateGpuInstance(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstance_t *gpuInstance)
{
    ENTER();
    MIG_GPU(device);
    const struct gi_profile *p = profile_by(gpu, 0, profileId);
    if (!gpuInstance)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!p)
        return NVML_ERROR_NOT_SUPPORTED;
    MIG_ENABLED();
    for (unsigned int start = 0; start < 8; start++)
        if (fits(gpu, p, start) == NVML_SUCCESS)
            return create_gpu_instance(gpu, p, start, gpuInstance);
    return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

EXPORT nvmlReturn_t nvmlDeviceCreateGpuInstanceWithPlacement(nvmlDevice_t device, unsigned int profileId,
                                                             const nvmlGpuInstancePlacement_t *placement,
                                                             nvmlGpuInstance_t *gpuInstance)
{
    ENTER();
    MIG_GPU(device);
    const struct gi_profile *p = profile_by(gpu, 0, profileId);
    if (!gpuInstance || !placement)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!p)
        return NVML_ERROR_NOT_SUPPORTED;
    MIG_ENABLED();
    if (placement->size != p->mem_slices)
        return NVML_ERROR_INVALID_ARGUMENT;
    return create_gpu_instance(gpu, p, placement->start, gpuInstance);
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstances(nvmlDevice_t device, unsigned int profileId, nvmlGpuInstance_t *gpuInstances,
                                              unsigned int *count)
{
    ENTER();
    MIG_GPU(device);
    const struct gi_profile *p = profile_by(gpu, 0, profileId);
    if (!count || !gpuInstances)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!p)
        return NVML_ERROR_NOT_SUPPORTED;
    MIG_ENABLED();
    /* the caller's array holds the profile's instanceCount (nvml.h) */
    unsigned int n = 0;
    for (unsigned int g = 0; g < MAX_GPU_INSTANCES; g++)
        if (gpu->gpu_instances[g].used && gpu->gpu_instances[g].profile == p && n < p->instances)
            gpuInstances[n++] = &gpu->gpu_instances[g];
    *count = n;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetGpuInstanceById(nvmlDevice_t device, unsigned int id, nvmlGpuInstance_t *gpuInstance)
{
    ENTER();
    MIG_GPU(device);
    if (!gpuInstance)
        return NVML_ERROR_INVALID_ARGUMENT;
    MIG_ENABLED();
    if (id >= MAX_GPU_INSTANCES || !gpu->gpu_instances[id].used)
        return NVML_ERROR_NOT_FOUND;
    *gpuInstance = &gpu->gpu_instances[id];
    return NVML_SUCCESS;
}

typedef struct {
    nvmlDevice_t device;
    unsigned int id, profileId;
    nvmlGpuInstancePlacement_t placement;
} nvmlGpuInstanceInfo_t;

EXPORT nvmlReturn_t nvmlGpuInstanceGetInfo(nvmlGpuInstance_t gpuInstance, nvmlGpuInstanceInfo_t *info)
{
    ENTER();
    struct fake_gpu_instance *gi = check_gpu_instance(gpuInstance);
    if (!gi || !info)
        return NVML_ERROR_INVALID_ARGUMENT;
    info->device = gi->gpu;
    info->id = gi->id;
    info->profileId = gi->profile->id;
    info->placement.start = gi->start;
    info->placement.size = gi->profile->mem_slices;
    return NVML_SUCCESS;
}

/* IN_USE while compute instances exist in it (nvml.h). */
EXPORT nvmlReturn_t nvmlGpuInstanceDestroy(nvmlGpuInstance_t gpuInstance)
{
    ENTER();
    struct fake_gpu_instance *gi = check_gpu_instance(gpuInstance);
    if (!gi)
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int c = 0; c < MAX_COMPUTE_INSTANCES; c++)
        if (gi->compute[c].used)
            return NVML_ERROR_IN_USE;
    if (in_use_by(gi->gpu, gi->id, 0, 1))
        return NVML_ERROR_IN_USE;
    gi->used = 0;
    mig_save();
    return NVML_SUCCESS;
}

static nvmlReturn_t ci_profile_info(nvmlGpuInstance_t gpuInstance, unsigned int profile, unsigned int engProfile,
                                    nvmlComputeInstanceProfileInfo_t *info, const struct fake_gpu_instance **out)
{
    const struct fake_gpu_instance *gi = check_gpu_instance(gpuInstance);
    if (!gi || !info || engProfile != 0) /* NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED is the only one */
        return NVML_ERROR_INVALID_ARGUMENT;
    if (profile >= CI_PROFILE_COUNT || ci_profile_slices[profile] > gi->profile->slices)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned int slices = ci_profile_slices[profile];
    info->id = profile;
    info->sliceCount = slices;
    info->instanceCount = gi->profile->slices / slices;
    info->multiprocessorCount = gi->profile->sms / gi->profile->slices * slices;
    info->sharedCopyEngineCount = gi->profile->copy_engines;
    info->sharedDecoderCount = gi->profile->decoders;
    info->sharedEncoderCount = gi->profile->encoders;
    info->sharedJpegCount = gi->profile->jpegs;
    info->sharedOfaCount = gi->profile->ofas;
    *out = gi;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfo(nvmlGpuInstance_t gpuInstance, unsigned int profile,
                                                                 unsigned int engProfile, nvmlComputeInstanceProfileInfo_t *info)
{
    ENTER();
    const struct fake_gpu_instance *gi;
    return ci_profile_info(gpuInstance, profile, engProfile, info, &gi);
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetComputeInstanceProfileInfoV(nvmlGpuInstance_t gpuInstance, unsigned int profile,
                                                                  unsigned int engProfile, nvmlComputeInstanceProfileInfo_v2_t *info)
{
    ENTER();
    if (!info)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (info->version != nvmlComputeInstanceProfileInfo_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    nvmlComputeInstanceProfileInfo_t v1;
    const struct fake_gpu_instance *gi = NULL;
    nvmlReturn_t ret = ci_profile_info(gpuInstance, profile, engProfile, &v1, &gi);
    if (ret != NVML_SUCCESS)
        return ret;
    info->id = v1.id;
    info->sliceCount = v1.sliceCount;
    info->instanceCount = v1.instanceCount;
    info->multiprocessorCount = v1.multiprocessorCount;
    info->sharedCopyEngineCount = v1.sharedCopyEngineCount;
    info->sharedDecoderCount = v1.sharedDecoderCount;
    info->sharedEncoderCount = v1.sharedEncoderCount;
    info->sharedJpegCount = v1.sharedJpegCount;
    info->sharedOfaCount = v1.sharedOfaCount;
    if (v1.sliceCount == gi->profile->slices)
        snprintf(info->name, sizeof(info->name), "MIG %s", gi->profile->name);
    else
        snprintf(info->name, sizeof(info->name), "MIG %uc.%s", v1.sliceCount, gi->profile->name);
    return NVML_SUCCESS;
}

/* A compute instance takes the lowest free aligned run of its slices within the GPU instance. */
EXPORT nvmlReturn_t nvmlGpuInstanceCreateComputeInstance(nvmlGpuInstance_t gpuInstance, unsigned int profileId,
                                                         nvmlComputeInstance_t *computeInstance)
{
    ENTER();
    struct fake_gpu_instance *gi = check_gpu_instance(gpuInstance);
    if (!gi || !computeInstance)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (profileId >= CI_PROFILE_COUNT || ci_profile_slices[profileId] > gi->profile->slices)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned int size = ci_profile_slices[profileId], used = 0, free_id = MAX_COMPUTE_INSTANCES;
    for (unsigned int c = MAX_COMPUTE_INSTANCES; c-- > 0;) {
        if (gi->compute[c].used)
            used |= ((1u << gi->compute[c].size) - 1) << gi->compute[c].start;
        else
            free_id = c;
    }
    for (unsigned int start = 0; start + size <= gi->profile->slices; start += size) {
        unsigned int want = ((1u << size) - 1) << start;
        if (used & want)
            continue;
        if (free_id >= MAX_COMPUTE_INSTANCES)
            break;
        struct fake_compute_instance *ci = &gi->compute[free_id];
        memset(ci, 0, sizeof(*ci));
        ci->used = 1;
        ci->id = free_id;
        ci->profile = profileId;
        ci->start = start;
        ci->size = size;
        ci->gpu_instance = gi;
        make_uuid(gi->gpu, ++mig_serial, ci->uuid, sizeof(ci->uuid));
        *computeInstance = ci;
        mig_save();
        mig_rebuild(gi->gpu);
        return NVML_SUCCESS;
    }
    return NVML_ERROR_INSUFFICIENT_RESOURCES;
}

EXPORT nvmlReturn_t nvmlGpuInstanceGetComputeInstances(nvmlGpuInstance_t gpuInstance, unsigned int profileId,
                                                       nvmlComputeInstance_t *computeInstances, unsigned int *count)
{
    ENTER();
    struct fake_gpu_instance *gi = check_gpu_instance(gpuInstance);
    if (!gi || !computeInstances || !count)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (profileId >= CI_PROFILE_COUNT || ci_profile_slices[profileId] > gi->profile->slices)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned int n = 0;
    for (unsigned int c = 0; c < MAX_COMPUTE_INSTANCES; c++)
        if (gi->compute[c].used && gi->compute[c].profile == profileId)
            computeInstances[n++] = &gi->compute[c];
    *count = n;
    return NVML_SUCCESS;
}

typedef struct {
    nvmlDevice_t device;
    nvmlGpuInstance_t gpuInstance;
    unsigned int id, profileId;
    nvmlComputeInstancePlacement_t placement;
} nvmlComputeInstanceInfo_t;

EXPORT nvmlReturn_t nvmlComputeInstanceGetInfo_v2(nvmlComputeInstance_t computeInstance, nvmlComputeInstanceInfo_t *info)
{
    ENTER();
    struct fake_compute_instance *ci = check_compute_instance(computeInstance);
    if (!ci || !info)
        return NVML_ERROR_INVALID_ARGUMENT;
    info->device = ci->gpu_instance->gpu;
    info->gpuInstance = ci->gpu_instance;
    info->id = ci->id;
    info->profileId = ci->profile;
    info->placement.start = ci->start;
    info->placement.size = ci->size;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlComputeInstanceDestroy(nvmlComputeInstance_t computeInstance)
{
    ENTER();
    struct fake_compute_instance *ci = check_compute_instance(computeInstance);
    if (!ci)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (in_use_by(ci->gpu_instance->gpu, ci->gpu_instance->id, ci->id, 0))
        return NVML_ERROR_IN_USE;
    ci->used = 0;
    mig_save();
    mig_rebuild(ci->gpu_instance->gpu);
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
